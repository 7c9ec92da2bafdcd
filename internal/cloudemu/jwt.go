package cloudemu

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// Token verification for the jwt and aws clouds, with go-jose: a library
// independent of the recipes in cloud/, against the JWKS the issuer publishes.

// tokenAlgs are the algorithms a broker configured for credsign accepts.
var tokenAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// keySet returns the issuer's JWKS: Options.JWKS, else fetched from
// Options.JWKSURL (a file path or an http(s) URL). A URL is fetched again
// when a token names a kid the cached set lacks, as brokers do after a key
// rotation.
func (e *Emulator) keySet(kid string) (jose.JSONWebKeySet, error) {
	e.mu.Lock()
	cached := e.jwks
	e.mu.Unlock()
	if cached != nil && len(cached.Key(kid)) > 0 {
		return *cached, nil
	}
	raw := e.opts.JWKS
	if raw == nil {
		if e.opts.JWKSURL == "" {
			return jose.JSONWebKeySet{}, errors.New("no JWKS configured (Options.JWKS or JWKSURL)")
		}
		b, err := fetchJWKS(e.opts.JWKSURL)
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		raw = b
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("JWKS is not a JSON Web Key Set: %w", err)
	}
	e.mu.Lock()
	e.jwks = &set
	e.mu.Unlock()
	return set, nil
}

func fetchJWKS(src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read JWKS: %w", err)
		}
		return b, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS from %s: %s", src, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	return b, nil
}

// verifyToken checks a JWT as a broker's JWT authenticator does: signature
// against the issuer's JWKS, iss (Options.Issuer) and aud when configured,
// nbf and exp by the emulator's clock, and sub naming a registered device
// whose ClientId is clientID. The session ends at exp.
func (e *Emulator) verifyToken(clientID, token, audience string, now time.Time, find secrets) (verdict, error) {
	tok, err := josejwt.ParseSigned(token, tokenAlgs)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: token is not a JWS: %w", ErrBadCredentials, err)
	}
	kid := ""
	if len(tok.Headers) == 1 {
		kid = tok.Headers[0].KeyID
	}
	set, err := e.keySet(kid)
	if err != nil {
		return verdict{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	var claims josejwt.Claims
	if err := tok.Claims(set, &claims); err != nil {
		return verdict{}, fmt.Errorf("%w: token signature does not verify against the JWKS: %w", ErrBadCredentials, err)
	}
	want := josejwt.Expected{Issuer: e.opts.Issuer, Time: now}
	if audience == "" {
		audience = e.opts.Audience
	}
	if audience != "" {
		want.AnyAudience = josejwt.Audience{audience}
	}
	if err := claims.ValidateWithLeeway(want, 0); err != nil {
		if errors.Is(err, josejwt.ErrExpired) {
			return verdict{}, fmt.Errorf("%w: token expired at %s", ErrExpired, claims.Expiry.Time().UTC().Format(time.RFC3339))
		}
		return verdict{}, fmt.Errorf("%w: token claims: %w", ErrBadCredentials, err)
	}
	if claims.Expiry == nil {
		return verdict{}, fmt.Errorf("%w: token has no exp", ErrBadCredentials)
	}
	wantClient, ok := find("jwt/" + claims.Subject)
	if !ok {
		return verdict{}, fmt.Errorf("%w: token subject %q", ErrUnknownDevice, claims.Subject)
	}
	if wantClient != clientID {
		return verdict{}, fmt.Errorf("%w: ClientId %q is not the subject's %q", ErrBadCredentials, clientID, wantClient)
	}
	return verdict{expires: claims.Expiry.Time()}, nil
}

// verifyGoAuthLocal checks a CONNECT as mosquitto-go-auth's JWT backend in
// local mode does (iegomez/mosquitto-go-auth, 20ee9310: go-auth.go
// authUnpwdCheck hands the MQTT username to backends/jwt.go GetUser as
// the token; getJWTClaims parses it with golang-jwt v3 ParseWithClaims and
// a key function that returns []byte(jwt_secret) whatever the header
// says, so only the HMAC methods HS256, HS384 and HS512 can verify, and
// MapClaims.Valid refuses a token past exp, before nbf or with iat in the
// future; getUsernameForToken then takes the sub claim, and
// backends/jwt_local.go getLocalUser asks the database whether that user
// exists: here, whether a device of that id is registered). Neither the
// ClientId nor iss nor aud is checked; the session is not cut at exp.
func verifyGoAuthLocal(token string, secret []byte, now time.Time, find secrets) (verdict, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: the username is not a JWT", ErrBadCredentials)
	}
	enc := base64.RawURLEncoding
	hb, err := enc.DecodeString(parts[0])
	if err != nil {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token header is not base64url", ErrBadCredentials)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &header) != nil {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token header is not JSON", ErrBadCredentials)
	}
	h, ok := map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New}[header.Alg]
	if !ok {
		// golang-jwt's ECDSA, RSA and EdDSA methods refuse a []byte key.
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: alg %q cannot verify with the shared jwt_secret (key is of invalid type)", ErrBadCredentials, header.Alg)
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token signature is not base64url", ErrBadCredentials)
	}
	m := hmac.New(h, secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(m.Sum(nil), sig) {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: signature is invalid", ErrBadCredentials)
	}
	cb, err := enc.DecodeString(parts[1])
	if err != nil {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token claims are not base64url", ErrBadCredentials)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	if dec.Decode(&claims) != nil {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token claims are not a JSON object", ErrBadCredentials)
	}
	// golang-jwt v3 MapClaims.Valid: VerifyExpiresAt(now, false),
	// VerifyIssuedAt(now, false), VerifyNotBefore(now, false).
	unix := now.Unix()
	if exp, ok := numClaim(claims, "exp"); ok && unix > exp {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token is expired", ErrExpired)
	}
	if iat, ok := numClaim(claims, "iat"); ok && unix < iat {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token used before issued", ErrBadCredentials)
	}
	if nbf, ok := numClaim(claims, "nbf"); ok && unix < nbf {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: token is not valid yet", ErrBadCredentials)
	}
	user, _ := claims["sub"].(string)
	if _, ok := find("jwt/" + user); !ok || user == "" {
		return verdict{}, fmt.Errorf("%w: mosquitto-go-auth: no user %q", ErrUnknownDevice, user)
	}
	return verdict{}, nil
}

// numClaim reads a NumericDate claim as golang-jwt v3 MapClaims does
// (a JSON number, truncated to an integer).
func numClaim(claims map[string]any, name string) (int64, bool) {
	n, ok := claims[name].(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	return int64(f), true
}
