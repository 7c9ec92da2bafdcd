package service

import (
	"slices"

	"github.com/credsign/credsign/internal/metrics"
	"github.com/credsign/credsign/secrets"
)

// Operation is what Authorize needs to know of the operation called: the
// roles its contract allows (openapi.yaml declares them, the API reads
// them from there) and the device it names.
type Operation struct {
	// Roles may call the operation (RoleAdmin, secrets.RoleProvisioner,
	// secrets.RoleDevice).
	Roles []string
	// DeviceID is the device the operation acts on, "" when none.
	DeviceID string
	// Issues is true for the operation that issues credentials, whose
	// refusals are counted as denied issuances.
	Issues bool
}

// Authorize decides, once per call and before its input is read, whether
// caller may perform op: its role must be one the operation allows, and a
// device token acts on its own device only. A caller who may not do
// something learns only that (CodeForbidden), not whether its input would
// have been valid.
func (s *Service) Authorize(caller Principal, op Operation) error {
	var err error
	switch {
	case !slices.Contains(op.Roles, caller.Role):
		err = newError(CodeForbidden, "this token may not do that")
	case caller.Role == secrets.RoleDevice && op.DeviceID != caller.DeviceID:
		err = newError(CodeForbidden, "a device token acts on its own device only")
	}
	if err != nil && op.Issues {
		s.metrics.Issued("", metrics.OutcomeDenied)
	}
	return err
}
