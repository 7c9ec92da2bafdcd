// Package emutest starts a cloud emulator (internal/cloudemu) that knows a
// test device, and says how to point credsign's device record at it. The
// end-to-end tests of the agent and of the device clients share it.
package emutest

import (
	"fmt"
	"testing"
	"time"

	"github.com/credsign/credsign/internal/cloudemu"
)

// Device is a test device: its cloud, its params in credsign, its secret
// and whether its broker speaks TLS.
type Device struct {
	Cloud  string
	Params map[string]any
	Secret string
	TLS    bool
}

// Devices are one device of each cloud the tests connect through, on the
// transport its cloud usually uses. Their secrets are test values.
var Devices = []Device{
	{cloudemu.Aliyun, map[string]any{"productKey": "a1pk", "deviceName": "lamp"}, "s3cret-aliyun", true},
	{cloudemu.Tencent, map[string]any{"productId": "ABCDEFGHIJ", "deviceName": "lamp"}, "MTIzNDU2Nzg5MGFiY2RlZg==", false},
	{cloudemu.Huawei, map[string]any{"deviceId": "prod_lamp"}, "s3cret-huawei", true},
	{cloudemu.Azure, map[string]any{"hubHost": "hub.azure-devices.net", "deviceId": "lamp"}, "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=", true},
}

// Start starts an emulator of d's cloud on loopback that knows d, closed
// when t ends, with its clock now (nil: real time). It returns the emulator
// and the params to register d with in credsign: d's params with the
// emulator's host and port, and the transport (aliyun's secureMode,
// huawei's tls) set to match it.
func Start(t testing.TB, d Device, now func() time.Time) (*cloudemu.Emulator, map[string]any) {
	t.Helper()
	e, err := cloudemu.Start(cloudemu.Options{Cloud: d.Cloud, TLS: d.TLS, Now: now, ExpiryCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	emu := map[string]string{}
	params := map[string]any{"host": e.Host(), "port": e.Port()}
	for k, v := range d.Params {
		emu[k] = fmt.Sprint(v)
		params[k] = v
	}
	if err := e.AddDevice(emu, d.Secret); err != nil {
		t.Fatal(err)
	}
	switch d.Cloud {
	case cloudemu.Aliyun:
		params["secureMode"] = map[bool]int{true: 2, false: 3}[d.TLS]
	case cloudemu.Huawei:
		params["tls"] = d.TLS
	}
	return e, params
}
