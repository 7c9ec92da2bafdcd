package api

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/credsign/credsign/secrets"
	"github.com/credsign/credsign/service"
)

// Plane is a set of operations served on one listener: the device plane
// faces the devices (often the internet), the admin plane the operators.
type Plane string

// The planes.
const (
	// PlaneDevice serves what devices call: credentials, enrolment, what a
	// device does with its own tokens and keys, JWKS and health.
	PlaneDevice Plane = "device"
	// PlaneAdmin serves the admin and provisioner operations, /metrics,
	// /openapi.yaml, /docs and health.
	PlaneAdmin Plane = "admin"
	// PlaneAll serves both on one listener (development, or a server with
	// one address).
	PlaneAll Plane = "all"
)

// planeSet is the planes an operation is served on.
type planeSet struct{ device, admin bool }

// has reports whether plane p serves an operation of the set.
func (ps planeSet) has(p Plane) bool {
	switch p {
	case PlaneDevice:
		return ps.device
	case PlaneAdmin:
		return ps.admin
	}
	return true
}

// planeExtension is the operation extension of openapi.yaml that names
// the planes serving an operation (a list of device and admin).
const planeExtension = "x-credsign-plane"

// operationPlanes returns the planes that serve an operation: those of
// its x-credsign-plane if it has one (a public operation must), else the
// ones its roles call from: the device plane when a device or an enrolment
// token may call it, the admin plane when an admin or provisioner token may.
// So a new secured operation is on the right plane without a word more,
// and a public one cannot be added without saying where it is served.
func operationPlanes(op *openapi3.Operation, roles []string) (planeSet, error) {
	var ps planeSet
	raw, ok := op.Extensions[planeExtension]
	if !ok {
		if roles == nil {
			return ps, fmt.Errorf("public operation %s has no %s", op.OperationID, planeExtension)
		}
		ps.device = slices.Contains(roles, secrets.RoleDevice) || slices.Contains(roles, service.RoleEnrolment)
		ps.admin = slices.Contains(roles, service.RoleAdmin) || slices.Contains(roles, secrets.RoleProvisioner)
		return ps, nil
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return ps, fmt.Errorf("operation %s: %s is not a list of planes", op.OperationID, planeExtension)
	}
	for _, v := range list {
		switch p, _ := v.(string); Plane(p) {
		case PlaneDevice:
			ps.device = true
		case PlaneAdmin:
			ps.admin = true
		default:
			return ps, fmt.Errorf("operation %s: unknown plane %v in %s (device or admin)", op.OperationID, v, planeExtension)
		}
	}
	return ps, nil
}

// sampler decides which successful credential issues get an access line.
type sampler struct {
	every uint64 // 0: none
	n     atomic.Uint64
}

// newSampler returns the sampler of Config.AccessLogSample and AccessLogOff.
func newSampler(every int, off bool) *sampler {
	switch {
	case off:
		return &sampler{}
	case every < 1:
		every = 1
	}
	return &sampler{every: uint64(every)}
}

// take reports whether this successful issue is logged: the first of
// every s.every.
func (s *sampler) take() bool {
	if s.every <= 1 {
		return s.every == 1
	}
	return (s.n.Add(1)-1)%s.every == 0
}
