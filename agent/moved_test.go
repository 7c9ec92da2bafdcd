package agent

import "testing"

// TestMoved: fresh credentials for the same broker and topics (a new
// signature, ClientId or expiry) are a refresh; another cloud, broker,
// transport or topic set is a move that needs a new connection.
func TestMoved(t *testing.T) {
	base := Credentials{Cloud: "aliyun", ClientID: "a|t=1|", Password: "p1", Host: "h", Port: 8883, TLS: true,
		Topics: Topics{Telemetry: "/pk/dn/user/update", Commands: "/pk/dn/user/get"}}
	tests := []struct {
		name  string
		edit  func(*Credentials)
		moved bool
	}{
		{"new triple", func(c *Credentials) { c.ClientID, c.Password = "a|t=2|", "p2" }, false},
		{"other cloud", func(c *Credentials) { c.Cloud = "huawei" }, true},
		{"other host", func(c *Credentials) { c.Host = "h2" }, true},
		{"other port", func(c *Credentials) { c.Port = 443 }, true},
		{"plain", func(c *Credentials) { c.TLS = false }, true},
		{"alpn", func(c *Credentials) { c.ALPN = "mqtt" }, true},
		{"other telemetry topic", func(c *Credentials) { c.Topics.Telemetry = "/pk/dn2/user/update" }, true},
		{"other commands topic", func(c *Credentials) { c.Topics.Commands = "/pk/dn2/user/get" }, true},
	}
	for _, tt := range tests {
		fresh := base
		tt.edit(&fresh)
		if got := moved(base, fresh); got != tt.moved {
			t.Errorf("%s: moved = %t, want %t", tt.name, got, tt.moved)
		}
	}
}
