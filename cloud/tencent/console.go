package tencent

import (
	"encoding/base64"

	"github.com/credsign/credsign/cloud"
)

// tencent-csv: Tencent Cloud IoT Hub (物联网通信) and IoT Explorer
// (物联网开发平台), key authentication. Batch creation (批量创建设备) returns
// each device's DeviceName and DevicePsk, the base64 PSK (the fields of
// CreateDevice, https://cloud.tencent.com/document/product/634/19496 and
// https://cloud.tencent.com/document/product/1081/37178). No public page
// found here prints the downloaded file's header row: the API field names
// (ProductId, DeviceName, DevicePsk) and the console's Chinese labels
// (产品ID, 设备名称, 设备密钥) are accepted; the product is chosen in the
// console, so a file without a ProductId column needs --param productId=….

// ConsoleFormat implements cloud.ConsoleLayout: the file of tencent-csv.
func (Backend) ConsoleFormat() *cloud.ConsoleFormat {
	return &cloud.ConsoleFormat{
		Name:   "tencent-csv",
		Secret: cloud.ConsoleColumn{Param: "secret", Names: []string{"devicepsk", "psk", "设备密钥", "设备秘钥", "密钥"}},
		Params: []cloud.ConsoleColumn{
			{Param: "productId", Names: []string{"productid", "产品id"}, Check: cloud.ConsoleWord("ProductId", 1, 64, "")},
			// CreateDevice: [a-zA-Z0-9:_-]{1,48}
			{Param: "deviceName", Names: []string{"devicename", "设备名称", "设备名"}, Check: cloud.ConsoleWord("DeviceName", 1, 48, ":_-")},
		},
		DefaultID: "{productId}.{deviceName}",
		Signature: []string{"devicepsk", "psk"},
		SecretOK: func(s string) string {
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return "is not a base64 PSK"
			}
			return ""
		},
	}
}
