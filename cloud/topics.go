package cloud

// Topics are a cloud's standard MQTT topics for one device (docs/clouds.md,
// "Topics"), so that firmware can publish telemetry and receive commands
// without knowing the cloud. Telemetry and Commands are always set; the
// others only where the cloud has them. Placeholders in braces ({rid},
// {request_id}, {status}) are filled by the device per message.
type Topics struct {
	// Telemetry is where the device publishes its data.
	Telemetry string `json:"telemetry"`
	// Commands is the topic or filter the device subscribes to for messages
	// and commands from the cloud.
	Commands string `json:"commands"`
	// CommandResponse is where the device publishes a command's result (Huawei).
	CommandResponse string `json:"commandResponse,omitempty"`
	// PropertyReport is where the device publishes thing-model properties.
	PropertyReport string `json:"propertyReport,omitempty"`
	// PropertyReply is where the cloud answers a property report (subscribe).
	PropertyReply string `json:"propertyReply,omitempty"`
	// PropertySet is where the cloud sets properties (subscribe).
	PropertySet string `json:"propertySet,omitempty"`
	// Actions is where the cloud asks the device to perform an action (Tuya; subscribe).
	Actions string `json:"actions,omitempty"`
	// Events is where the device publishes thing-model events (Tuya).
	Events string `json:"events,omitempty"`
	// ShadowUpdate is where the device publishes its reported state.
	ShadowUpdate string `json:"shadowUpdate,omitempty"`
	// ShadowDelta is where desired-state changes arrive (subscribe).
	ShadowDelta string `json:"shadowDelta,omitempty"`
	// Methods is Azure's direct-method request filter (subscribe).
	Methods string `json:"methods,omitempty"`
	// MethodResponse is where the device answers a direct method (Azure).
	MethodResponse string `json:"methodResponse,omitempty"`
	// TwinResponse is where Azure answers twin requests (subscribe).
	TwinResponse string `json:"twinResponse,omitempty"`
	// TwinGet asks Azure for the whole twin (publish).
	TwinGet string `json:"twinGet,omitempty"`
	// TwinReported updates the twin's reported properties (publish).
	TwinReported string `json:"twinReported,omitempty"`
	// TwinDesired is where desired-property changes arrive (subscribe).
	TwinDesired string `json:"twinDesired,omitempty"`
}
