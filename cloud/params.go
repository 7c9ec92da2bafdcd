package cloud

// The kinds of param the clouds share, so that a cloud's Describe says
// what each param is rather than how a ParamSpec spells it. HostParam and
// PortParam (registry.go) are two more.

// RequiredParam is a required string param, such as the device's name in
// the cloud. check, when not nil, refuses what the cloud's wire format
// cannot carry (see Forbid).
func RequiredParam(name, desc string, check func(string) error) ParamSpec {
	return ParamSpec{Name: name, Type: TypeString, Required: true, Description: desc, Check: check}
}

// StringParam is an optional string param whose default is def, or none
// when def is empty (a string param is never empty). check, when not nil,
// validates the value.
func StringParam(name, def, desc string, check func(string) error) ParamSpec {
	s := ParamSpec{Name: name, Type: TypeString, Description: desc, Check: check}
	if def != "" {
		s.Default = def
	}
	return s
}

// LabelParam is an optional string param that is one label of the broker's
// host name (a region, an instance id), so it may not contain '.'; def as
// for StringParam.
func LabelParam(name, def, desc string) ParamSpec {
	return StringParam(name, def, desc, hostLabel)
}

var hostLabel = Forbid(".", "it is a label of the host name")

// EnumParam is an optional param that takes one of a few values, def (its
// default) or one of others; its type is that of the values.
func EnumParam[T string | int](name, desc string, def T, others ...T) ParamSpec {
	s := ParamSpec{Name: name, Type: TypeString, Description: desc, Default: def, Allowed: []any{def}}
	if _, ok := any(def).(int); ok {
		s.Type = TypeInteger
	}
	for _, v := range others {
		s.Allowed = append(s.Allowed, v)
	}
	return s
}

// BoolParam is an optional boolean param with its default.
func BoolParam(name string, def bool, desc string) ParamSpec {
	return ParamSpec{Name: name, Type: TypeBoolean, Default: def, Description: desc}
}

// TelemetryParam is the optional telemetryTopic param, which overrides the
// topic the device publishes telemetry to, described by desc.
func TelemetryParam(desc string) ParamSpec {
	return StringParam("telemetryTopic", "", desc, CheckTopicName)
}

// CommandsParam is the optional commandsTopic param, which overrides the
// topic filter the device subscribes to for commands, described by desc.
func CommandsParam(desc string) ParamSpec {
	return StringParam("commandsTopic", "", desc, CheckTopicFilter)
}
