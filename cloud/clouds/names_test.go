package clouds

import (
	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/cloud/huawei"
	"github.com/credsign/credsign/cloud/tencent"
)

// The tests of this package check every cloud through the registry. They
// were written against package signing's (and package registration's)
// functions; these names keep them as they were.

var reg = Registry()

type (
	Request      = cloud.Request
	Credentials  = cloud.Credentials
	Topics       = cloud.Topics
	Triple       = cloud.Triple
	Diagnosis    = cloud.Diagnosis
	Cloud        = cloud.Cloud
	TokenKey     = cloud.TokenKey
	InvalidError = cloud.InvalidError
	JWK          = cloud.JWK
)

const (
	AlgES256, AlgRS256, AlgEdDSA, NoConnack, DefaultTTL          = cloud.AlgES256, cloud.AlgRS256, cloud.AlgEdDSA, cloud.NoConnack, cloud.DefaultTTL
	PartClientID, PartUsername, PartPassword, StatusDiffers      = cloud.PartClientID, cloud.PartUsername, cloud.PartPassword, cloud.StatusDiffers
	TypeString, TypeInteger, TypeBoolean, TypeObject, SecretNone = cloud.TypeString, cloud.TypeInteger, cloud.TypeBoolean, cloud.TypeObject, cloud.SecretNone
)

var (
	Sign, Explain, Validate, Diagnose         = reg.Sign, reg.Explain, reg.Validate, reg.Diagnose
	NormalizeParams, ValidateSecret           = reg.NormalizeParams, reg.ValidateSecret
	Clouds, LookupCloud, IsInvalid            = reg.Clouds, reg.LookupCloud, cloud.IsInvalid
	GenerateTokenKey, NewTokenKey             = cloud.GenerateTokenKey, cloud.NewTokenKey
	ParseTokenKeyPEM, JWKS, signJWS           = cloud.ParseTokenKeyPEM, cloud.JWKS, cloud.SignJWS
	hourStamp, checkConnID, appendQueryEscape = huawei.HourStamp, tencent.CheckConnID, cloud.AppendQueryEscape[string]
)

// prepare is Registry.Prepare, as the benchmarks were written.
func prepare(req Request, _ *cloud.Trace) (*Cloud, cloud.Input, error) { return reg.Prepare(req) }
