package huawei

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/credsign/credsign/cloud"
)

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
//
// (cloud.ConsoleFormat says how header names are matched.)
// ConsoleFormat implements cloud.ConsoleLayout: the file of huawei-csv.
func (Backend) ConsoleFormat() *cloud.ConsoleFormat {
	return &cloud.ConsoleFormat{
		Name:   "huawei-csv",
		Secret: cloud.ConsoleColumn{Param: "secret", Names: []string{"secret", "devicesecret", "密钥", "设备密钥", "设备秘钥"}},
		// AddDevice: device_id at most 128, node_id at most 64 characters.
		Params: []cloud.ConsoleColumn{
			{Param: "deviceId", Names: []string{"deviceid", "设备id"}, Check: atMost("deviceId", 128)},
			{Param: "nodeId", Names: []string{"nodeid", "设备标识码", "设备标识"}, Check: atMost("nodeId", 64)},
			{Param: "productId", Names: []string{"productid", "产品id"}, Check: atMost("productId", 64)},
		},
		DefaultID: "{deviceId}",
		Signature: []string{"deviceid", "nodeid", "设备标识码", "设备标识"},
		SecretOK: func(s string) string {
			if len(s) > 4096 {
				return "is longer than 4096 characters"
			}
			return ""
		},
		Only: []string{"nodeId", "productId"},
		Derive: func(p map[string]string) {
			if p["deviceId"] == "" && p["productId"] != "" && p["nodeId"] != "" {
				p["deviceId"] = p["productId"] + "_" + p["nodeId"]
			}
		},
	}
}

// atMost is the check of a column of at most max characters without
// spaces or control characters.
func atMost(param string, max int) func(string) string {
	return func(v string) string {
		if v == "" || len(v) > max || strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return "is not a valid " + param + " (at most " + strconv.Itoa(max) + " characters, no spaces)"
		}
		return ""
	}
}
