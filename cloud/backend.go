package cloud

import (
	"sort"

	"github.com/credsign/credsign/cloud/registration"
)

// Backend is one cloud as its package under cloud/ gives it: the
// description, params and recipe. A Backend may also have any of the
// optional abilities below; the Registry finds them by type assertion, in
// the manner of smallstep/certificates' CA backends.
type Backend interface {
	// Describe returns the cloud's description and recipe, a new value
	// on each call.
	Describe() *Cloud
}

// Diagnoser is a Backend whose triples the doctor can judge (Diagnose).
type Diagnoser interface {
	// Diagnose judges d.Got against the recipe, adding findings to d.
	Diagnose(d *Doctor)
}

// GroupKeyDeriver is a Backend whose devices' keys derive from a group key
// (Azure DPS symmetric-key group enrollments), so that a group keeps one
// key and its devices none.
type GroupKeyDeriver interface {
	// DeriveDeviceKey returns the key of device deviceID, of the given
	// params, in the group keyed groupKey. Its error never contains a key.
	DeriveDeviceKey(groupKey, deviceID string, params map[string]any) (string, error)
	// DeviceIDParam names the param that, when set, stands for the
	// device ID in the derivation (Azure's deviceId, the DPS registration
	// ID): a group's template must make it differ between devices.
	DeviceIDParam() string
}

// Registerer is a Backend whose devices credsign can register with the
// cloud on enrolment (docs/enrolment.md), by one or more kinds.
type Registerer interface {
	// RegistrationKinds lists the kinds the cloud offers; the Registry
	// fills in their Cloud.
	RegistrationKinds() []registration.Kind
}

// ConsoleLayout is a Backend whose console exports devices as a file that
// `credsign import` reads (docs/import.md).
type ConsoleLayout interface {
	// ConsoleFormat is the file's layout.
	ConsoleFormat() *ConsoleFormat
}

// Registry is the set of clouds a program serves, built once from an
// explicit list (cloud/clouds) and read-only after: safe for concurrent
// use. It answers for every cloud by name, so that its callers (service,
// api, cmd) name none.
type Registry struct {
	clouds   map[string]*Cloud
	backends map[string]Backend
	order    []string // the clouds as listed
	kinds    registration.Kinds
}

// NewRegistry returns the registry of the given clouds. It panics when two
// have the same name or a description is malformed: the list is code.
func NewRegistry(backends ...Backend) *Registry {
	r := &Registry{clouds: map[string]*Cloud{}, backends: map[string]Backend{}, kinds: registration.Kinds{}}
	for _, b := range backends {
		c := b.Describe()
		r.register(c)
		r.backends[c.Name] = b
		r.order = append(r.order, c.Name)
		if rg, ok := b.(Registerer); ok {
			for _, k := range rg.RegistrationKinds() {
				if _, dup := r.kinds[k.Name]; dup || k.Host == nil || len(k.Hosts) == 0 || k.Register == nil {
					panic("cloud: registration kind " + k.Name + " of " + c.Name + " listed twice, or without its hosts or calls")
				}
				k.Cloud = c.Name
				r.kinds[k.Name] = k
			}
		}
	}
	return r
}

// Names returns the clouds' names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.clouds))
	for n := range r.clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DoctorClouds lists the clouds Diagnose covers, sorted. The others are
// refused with an *InvalidError.
func (r *Registry) DoctorClouds() []string {
	var out []string
	for _, n := range r.Names() {
		if _, ok := r.backends[n].(Diagnoser); ok {
			out = append(out, n)
		}
	}
	return out
}

// GroupKeyDeriver returns the named cloud's group key derivation, when it
// has one.
func (r *Registry) GroupKeyDeriver(cloud string) (GroupKeyDeriver, bool) {
	g, ok := r.backends[cloud].(GroupKeyDeriver)
	return g, ok
}

// RegistrationKinds returns the registration kinds of every cloud, by
// name.
func (r *Registry) RegistrationKinds() registration.Kinds { return r.kinds }

// ConsoleFormats returns the console file layouts of every cloud that has
// one, in the order the clouds were listed (a file whose header fits two
// layouts is read by the first), with their Cloud and Required filled in.
func (r *Registry) ConsoleFormats() []*ConsoleFormat {
	var out []*ConsoleFormat
	for _, n := range r.order {
		if l, ok := r.backends[n].(ConsoleLayout); ok {
			f := l.ConsoleFormat()
			f.Cloud = n
			for _, s := range r.clouds[n].Params {
				if s.Required {
					f.Required = append(f.Required, s.Name)
				}
			}
			out = append(out, f)
		}
	}
	return out
}
