// Package clouds lists every cloud credsign serves: the one place a new
// cloud is added (docs/architecture.md, "A new cloud").
package clouds

import (
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/aliyun"
	"github.com/credsign/credsign/cloud/aws"
	"github.com/credsign/credsign/cloud/azure"
	"github.com/credsign/credsign/cloud/baidu"
	"github.com/credsign/credsign/cloud/huawei"
	"github.com/credsign/credsign/cloud/jwt"
	"github.com/credsign/credsign/cloud/onenet"
	"github.com/credsign/credsign/cloud/tencent"
	"github.com/credsign/credsign/cloud/tuya"
	"github.com/credsign/credsign/cloud/tuyalegacy"
)

// Registry returns the registry of every cloud.
func Registry() *cloud.Registry {
	return cloud.NewRegistry(
		aliyun.Backend{},
		tencent.Backend{},
		huawei.Backend{},
		azure.Backend{},
		onenet.Backend{},
		baidu.Backend{},
		tuya.Backend{},
		tuyalegacy.Backend{},
		aws.Backend{},
		jwt.Backend{},
	)
}
