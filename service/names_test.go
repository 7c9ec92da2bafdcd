package service

import "github.com/credsign/credsign/cloud/clouds"

// RegistrationAliyunDynamic is the registration kind the tests name
// (cloud/aliyun.KindDynamic).
const RegistrationAliyunDynamic = "aliyun-dynamic"

// registrationClouds is the cloud whose devices each registration kind
// registers, as the registry says.
var registrationClouds = func() map[string]string {
	out := map[string]string{}
	for name, k := range clouds.Registry().RegistrationKinds() {
		out[name] = k.Cloud
	}
	return out
}()
