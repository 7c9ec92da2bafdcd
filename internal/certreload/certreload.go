// Package certreload serves a TLS certificate from files and picks up a
// renewed certificate without a restart: it checks the files' modification
// times at most once a second and reloads them when they change.
package certreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// checkInterval is how often, at most, the files are looked at.
const checkInterval = time.Second

// Reloader holds the current certificate of a certificate/key file pair.
type Reloader struct {
	certFile, keyFile string
	// onReload is told about every reload attempt after the first load
	// (nil error: the new certificate is in use).
	onReload func(error)

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	lastCheck time.Time
}

// New loads the pair and returns a Reloader for it. onReload may be nil.
func New(certFile, keyFile string, onReload func(error)) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, onReload: onReload}
	stamp, err := r.currentStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	r.cert, r.stamp, r.lastCheck = &cert, stamp, time.Now()
	return r, nil
}

// currentStamp describes the files' current versions (modification time and size).
func (r *Reloader) currentStamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("reading TLS certificate: %w", err)
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// NotAfter returns when the certificate being served expires.
func (r *Reloader) NotAfter() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert.Leaf != nil {
		return r.cert.Leaf.NotAfter
	}
	return time.Time{}
}

// GetCertificate implements tls.Config.GetCertificate. When the files
// changed it loads them again; if that fails it keeps serving the
// certificate it has.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.lastCheck) < checkInterval {
		return r.cert, nil
	}
	r.lastCheck = now
	stamp, err := r.currentStamp()
	if err != nil || stamp == r.stamp {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Perhaps caught between writing the two files: try again later.
		if r.onReload != nil {
			r.onReload(fmt.Errorf("reloading TLS certificate: %w", err))
		}
		return r.cert, nil
	}
	r.cert, r.stamp = &cert, stamp
	if r.onReload != nil {
		r.onReload(nil)
	}
	return r.cert, nil
}
