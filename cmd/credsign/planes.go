package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/internal/certreload"
)

// planeListener is one listener of serve: the device plane (or every
// plane, with one address) on --addr, the admin plane on --admin-addr.
type planeListener struct {
	plane api.Plane
	// what names it in messages; expiryMetric is its certificate's gauge.
	what, expiryMetric string
	addr               string
	// certs reloads its certificate (nil: plain HTTP); tls is its
	// configuration.
	certs *certreload.Reloader
	tls   *tls.Config
	ln    net.Listener
	srv   *http.Server
}

// newPlanes returns the listeners f configures, not yet listening: one
// serving every plane, or the device plane and the admin plane.
func newPlanes(f serveFlags, logger zerolog.Logger) ([]*planeListener, error) {
	main := &planeListener{plane: api.PlaneAll, what: "listener", expiryMetric: "credsign_tls_certificate_expiry_timestamp_seconds", addr: f.addr}
	if err := main.configureTLS(f.tlsCert, f.tlsKey, f.clientCA, "--client-ca", logger); err != nil {
		return nil, err
	}
	if f.adminAddr == "" {
		return []*planeListener{main}, nil
	}
	main.plane, main.what = api.PlaneDevice, "device plane"
	admin := &planeListener{plane: api.PlaneAdmin, what: "admin plane", expiryMetric: "credsign_admin_tls_certificate_expiry_timestamp_seconds", addr: f.adminAddr}
	if err := admin.configureTLS(f.adminTLSCert, f.adminTLSKey, f.adminClientCA, "--admin-client-ca", logger); err != nil {
		return nil, err
	}
	return []*planeListener{main, admin}, nil
}

// configureTLS sets up HTTPS (TLS 1.2 and later) with a certificate
// reloaded when its files change and, with a client CA, required client
// certificates; nothing without a certificate.
func (p *planeListener) configureTLS(cert, key, clientCA, caFlag string, logger zerolog.Logger) error {
	if cert == "" {
		return nil
	}
	rl, err := certreload.New(cert, key, func(err error) {
		if err != nil {
			logger.Warn().Err(err).Str("plane", string(p.plane)).Msg("TLS certificate changed but could not be loaded; keeping the old one")
			return
		}
		logger.Info().Str("file", cert).Str("plane", string(p.plane)).Msg("TLS certificate reloaded")
	})
	if err != nil {
		return err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: rl.GetCertificate}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return fmt.Errorf("reading %s: %w", caFlag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s %s holds no PEM certificate", caFlag, clientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	p.certs, p.tls = rl, cfg
	return nil
}

// listen opens the listener and the server of h on it.
func (p *planeListener) listen(h http.Handler, logger zerolog.Logger) error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		// One plain line: "listen tcp 127.0.0.1:8080: bind: address already in use".
		return fmt.Errorf("cannot listen on %s: %w", p.addr, errors.Unwrap(err))
	}
	p.ln = ln
	p.srv = &http.Server{
		Handler:           h,
		TLSConfig:         p.tls,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(logger.With().Str("component", "http").Str("plane", string(p.plane)).Logger(), "", 0),
	}
	return nil
}

// serve serves until the server is shut down (http.ErrServerClosed).
func (p *planeListener) serve() error {
	if p.tls != nil {
		return p.srv.ServeTLS(p.ln, "", "")
	}
	return p.srv.Serve(p.ln)
}

// url is the listener's URL.
func (p *planeListener) url() string {
	if p.tls != nil {
		return "https://" + p.ln.Addr().String()
	}
	return "http://" + p.ln.Addr().String()
}

// closePlanes closes the listeners that were opened.
func closePlanes(ps []*planeListener) {
	for _, p := range ps {
		if p.srv != nil {
			_ = p.srv.Close()
		} else if p.ln != nil {
			_ = p.ln.Close()
		}
	}
}
