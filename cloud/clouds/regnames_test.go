package clouds_test

import (
	"github.com/credsign/credsign/cloud/aliyun"
	"github.com/credsign/credsign/cloud/azure"
	"github.com/credsign/credsign/cloud/clouds"
	"github.com/credsign/credsign/cloud/registration"
	"github.com/credsign/credsign/cloud/tencent"
)

// The registration tests drive every kind through one client, as they did
// in package registration; these names keep them as they were written.

var reg = clouds.Registry()

type (
	Client  = registration.Client
	Request = registration.Request
)

const KindAzureDPS, KindAliyunDynamic, KindTencentDynamic = azure.KindDPS, aliyun.KindDynamic, tencent.KindDynamic

var (
	ErrRefused, ErrUnavailable, ErrInvalid = registration.ErrRefused, registration.ErrUnavailable, registration.ErrInvalid
	Validate, ValidateSecret               = reg.RegistrationKinds().Validate, reg.RegistrationKinds().ValidateSecret
)
