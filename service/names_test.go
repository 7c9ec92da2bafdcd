package service

// RegistrationAliyunDynamic is the registration kind the tests name
// (cloud/aliyun.KindDynamic).
const RegistrationAliyunDynamic = "aliyun-dynamic"
