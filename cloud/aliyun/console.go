package aliyun

import (
	"strings"
	"unicode"

	"github.com/credsign/credsign/cloud"
)

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

// ConsoleFormat implements cloud.ConsoleLayout: the file of aliyun-csv.
func (Backend) ConsoleFormat() *cloud.ConsoleFormat {
	return &cloud.ConsoleFormat{
		Name:   "aliyun-csv",
		Secret: cloud.ConsoleColumn{Param: "secret", Names: []string{"devicesecret", "设备密钥", "设备秘钥", "设备密钥devicesecret"}},
		Params: []cloud.ConsoleColumn{
			{Param: "productKey", Names: []string{"productkey", "产品key", "产品productkey"}, Check: cloud.ConsoleWord("ProductKey", 1, 64, "")},
			// BatchImportDevice: 4 to 32 letters, digits, - _ @ . :
			{Param: "deviceName", Names: []string{"devicename", "设备名称", "设备名称devicename"}, Check: cloud.ConsoleWord("DeviceName", 4, 32, "-_@.:")},
		},
		DefaultID: "{productKey}.{deviceName}",
		Signature: []string{"productkey", "devicesecret"},
		SecretOK: func(s string) string {
			if len(s) > 64 || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
				return "is not a DeviceSecret (at most 64 characters, no spaces)"
			}
			return ""
		},
	}
}
