package consolecsv

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode"
)

// The console files, their columns and where each layout comes from.
// Header names are matched after folding case and dropping spaces, '_',
// '-' and '.', so "DeviceName", "device_name" and "Device Name" are one
// name; the Chinese names are the consoles' Chinese labels for the same
// fields. Columns are found by header name, never by position, and
// columns not listed here (Nickname/备注名称, IotId, 状态, …) are ignored.
// A UTF-8 BOM and CRLF line ends are fine; a file whose header is not
// UTF-8 but GB18030 (Excel's "CSV" on a Chinese Windows) is decoded.
//
// aliyun-csv: Alibaba Cloud IoT Platform, one secret per device.
//   - Devices > Devices > Batch Add (批量添加): after a batch is created,
//     Batch Management (批次管理) > Download CSV gives the device
//     certificates of the batch: ProductKey, DeviceName, DeviceSecret
//     (https://www.alibabacloud.com/help/doc-detail/89261.html "Create
//     multiple devices at a time"; the same three fields in the mass
//     production "Download device certificates" CSV,
//     https://help.aliyun.com/en/document_detail/127640.html).
//   - The batch-upload template of MQTT-based Enterprise instances, where
//     the device secret is imported, has DeviceName and DeviceSecret (the
//     fields of BatchImportDevice,
//     https://www.alibabacloud.com/help/en/iot/developer-reference/api-batchimportdevice);
//     the product is chosen in the dialog, so give --param productKey=….
//
//     The pages name the fields but do not print the header row byte for
//     byte: both the field names and the Chinese labels are accepted.
//
// tencent-csv: Tencent Cloud IoT Hub (物联网通信) and IoT Explorer
// (物联网开发平台), key authentication. Batch creation (批量创建设备) returns
// each device's DeviceName and DevicePsk, the base64 PSK (the fields of
// CreateDevice, https://cloud.tencent.com/document/product/634/19496 and
// https://cloud.tencent.com/document/product/1081/37178). No public page
// found here prints the downloaded file's header row: the API field names
// (ProductId, DeviceName, DevicePsk) and the console's Chinese labels
// (产品ID, 设备名称, 设备密钥) are accepted; the product is chosen in the
// console, so a file without a ProductId column needs --param productId=….
//
// huawei-csv: Huawei Cloud IoTDA, secret authentication. Batch
// registration (批量注册设备) takes the template BatchCreateDevices_Template.xlsx
// (https://support.huaweicloud.com/api-iothub/iot_06_v5_0021.html; the
// console accepts only .xlsx/.xls, so save the sheet as CSV UTF-8 first),
// whose columns are the AddDevice fields node_id, device_id, product_id,
// secret (https://support.huaweicloud.com/api-iothub/iot_06_v5_1501.html);
// the task's execution details (执行详情) list each device's device ID and
// secret. The device id defaults to ${product_id}_${node_id} when the
// device_id column is absent or empty, as the platform assigns it. The
// header text of the template is not printed in the pages: the field
// names, their camelCase forms and the Chinese labels (设备ID, 设备标识码,
// 产品ID, 密钥) are accepted.

// Format is one console's CSV layout.
type Format struct {
	// Name is the --format value, e.g. "aliyun-csv".
	Name string
	// Cloud is the credsign cloud the devices belong to.
	Cloud string
	// Secret is the column holding the device secret.
	Secret column
	// Params are the columns that become params, by param name.
	Params []column
	// Required lists the params every device must end up with (from a
	// column or from Options.Params).
	Required []string
	// DefaultID is the id template used without Options.IDTemplate.
	DefaultID string
	// signature lists the header names that identify the format.
	signature []string
	// check validates one param's value from the file; the message
	// must not repeat the value (a misplaced column may hold a secret).
	check func(param, value string) string
	// secretOK validates the secret; the message must not repeat it.
	secretOK func(secret string) string
	// derive fills params derivable from others (huawei deviceId).
	derive func(params map[string]string)
	// only lists the columns that make the id but are not params of the
	// cloud (huawei nodeId, productId).
	only []string
}

// column is one CSV column: the param (or "secret") it feeds and the
// header names it is known by, already folded.
type column struct {
	param string
	names []string
}

var formats = []*Format{
	{
		Name:   "aliyun-csv",
		Cloud:  "aliyun",
		Secret: column{"secret", []string{"devicesecret", "设备密钥", "设备秘钥", "设备密钥devicesecret"}},
		Params: []column{
			{"productKey", []string{"productkey", "产品key", "产品productkey"}},
			{"deviceName", []string{"devicename", "设备名称", "设备名称devicename"}},
		},
		Required:  []string{"productKey", "deviceName"},
		DefaultID: "{productKey}.{deviceName}",
		signature: []string{"productkey", "devicesecret"},
		check: func(param, v string) string {
			switch param {
			case "deviceName":
				// BatchImportDevice: 4 to 32 letters, digits, - _ @ . :
				if n := len(v); n < 4 || n > 32 || strings.IndexFunc(v, notIn("-_@.:")) >= 0 {
					return "is not a DeviceName (4 to 32 letters, digits, '-', '_', '@', '.', ':')"
				}
			case "productKey":
				if v == "" || len(v) > 64 || strings.IndexFunc(v, notIn("")) >= 0 {
					return "is not a ProductKey (letters and digits)"
				}
			}
			return ""
		},
		secretOK: func(s string) string {
			if len(s) > 64 || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
				return "is not a DeviceSecret (at most 64 characters, no spaces)"
			}
			return ""
		},
	},
	{
		Name:   "tencent-csv",
		Cloud:  "tencent",
		Secret: column{"secret", []string{"devicepsk", "psk", "设备密钥", "设备秘钥", "密钥"}},
		Params: []column{
			{"productId", []string{"productid", "产品id"}},
			{"deviceName", []string{"devicename", "设备名称", "设备名"}},
		},
		Required:  []string{"productId", "deviceName"},
		DefaultID: "{productId}.{deviceName}",
		signature: []string{"devicepsk", "psk"},
		check: func(param, v string) string {
			switch param {
			case "deviceName":
				// CreateDevice: [a-zA-Z0-9:_-]{1,48}
				if n := len(v); n < 1 || n > 48 || strings.IndexFunc(v, notIn(":_-")) >= 0 {
					return "is not a DeviceName (1 to 48 letters, digits, ':', '_', '-')"
				}
			case "productId":
				if v == "" || len(v) > 64 || strings.IndexFunc(v, notIn("")) >= 0 {
					return "is not a ProductId (letters and digits)"
				}
			}
			return ""
		},
		secretOK: func(s string) string {
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return "is not a base64 PSK"
			}
			return ""
		},
	},
	{
		Name:   "huawei-csv",
		Cloud:  "huawei",
		Secret: column{"secret", []string{"secret", "devicesecret", "密钥", "设备密钥", "设备秘钥"}},
		Params: []column{
			{"deviceId", []string{"deviceid", "设备id"}},
			{"nodeId", []string{"nodeid", "设备标识码", "设备标识"}},
			{"productId", []string{"productid", "产品id"}},
		},
		Required:  []string{"deviceId"},
		DefaultID: "{deviceId}",
		signature: []string{"deviceid", "nodeid", "设备标识码", "设备标识"},
		check: func(param, v string) string {
			// AddDevice: device_id at most 128, node_id at most 64
			// characters; no spaces or control characters here.
			max := map[string]int{"deviceId": 128, "nodeId": 64, "productId": 64}[param]
			if v == "" || len(v) > max || strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
				return "is not a valid " + param + " (at most " + strconv.Itoa(max) + " characters, no spaces)"
			}
			return ""
		},
		secretOK: func(s string) string {
			if len(s) > 4096 {
				return "is longer than 4096 characters"
			}
			return ""
		},
		only: []string{"nodeId", "productId"},
		derive: func(p map[string]string) {
			if p["deviceId"] == "" && p["productId"] != "" && p["nodeId"] != "" {
				p["deviceId"] = p["productId"] + "_" + p["nodeId"]
			}
		},
	},
}

// ColumnParams returns the names of the params format's columns feed
// ("productKey", "deviceName", …); nil for an unknown format. A caller may
// give them as Options.Params when the file lacks the column.
func ColumnParams(format string) []string {
	for _, f := range formats {
		if f.Name == format {
			var names []string
			for _, c := range f.Params {
				names = append(names, c.param)
			}
			return names
		}
	}
	return nil
}

// Formats returns the names of the formats, for usage text.
func Formats() []string {
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = f.Name
	}
	return names
}

// notIn reports a rune that is neither an ASCII letter or digit nor in extra.
func notIn(extra string) func(rune) bool {
	return func(r rune) bool {
		return !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r))) && !strings.ContainsRune(extra, r)
	}
}

// fold is the form header names are compared in.
func fold(h string) string {
	h = strings.TrimPrefix(h, "\ufeff")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ' || r == '_' || r == '-' || r == '.' || r == '\u3000':
		case r == '（' || r == '(' || r == ')' || r == '）':
			// "设备名称(DeviceName)" and "设备名称（DeviceName）" fold to the
			// same name as "设备名称devicename".
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
