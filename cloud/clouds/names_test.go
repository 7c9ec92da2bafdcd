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
	AlgES256  = cloud.AlgES256
	AlgRS256  = cloud.AlgRS256
	AlgEdDSA  = cloud.AlgEdDSA
	NoConnack = cloud.NoConnack

	PartClientID  = cloud.PartClientID
	PartUsername  = cloud.PartUsername
	PartPassword  = cloud.PartPassword
	StatusDiffers = cloud.StatusDiffers

	TypeString  = cloud.TypeString
	TypeInteger = cloud.TypeInteger
	TypeBoolean = cloud.TypeBoolean
	TypeObject  = cloud.TypeObject

	SecretNone = cloud.SecretNone

	DefaultTTL = cloud.DefaultTTL
)

var (
	Sign             = reg.Sign
	Explain          = reg.Explain
	Validate         = reg.Validate
	NormalizeParams  = reg.NormalizeParams
	ValidateSecret   = reg.ValidateSecret
	Diagnose         = reg.Diagnose
	Clouds           = reg.Clouds
	LookupCloud      = reg.LookupCloud
	IsInvalid        = cloud.IsInvalid
	GenerateTokenKey = cloud.GenerateTokenKey
	NewTokenKey      = cloud.NewTokenKey
	ParseTokenKeyPEM = cloud.ParseTokenKeyPEM
	JWKS             = cloud.JWKS
	signJWS          = cloud.SignJWS
	hourStamp        = huawei.HourStamp
	checkConnID      = tencent.CheckConnID

	appendQueryEscape = cloud.AppendQueryEscape[string]
)

// prepare is Registry.Prepare, as the benchmarks were written.
func prepare(req Request, _ *cloud.Trace) (*Cloud, cloud.Input, error) { return reg.Prepare(req) }
