// Package servertest serves a real credsign, the service and its HTTP API
// on the embedded store, on loopback for the tests of packages that talk
// to a server (the agent, the load generator, the API client).
package servertest

import (
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/credsign/credsign/api"
	"github.com/credsign/credsign/secrets/filestore"
	"github.com/credsign/credsign/service"
)

// Start serves credsign built from cfg, its store a new embedded store in a
// temporary directory, with the API's defaults and no logs. The server and
// the store are closed when the test ends.
func Start(t testing.TB, cfg service.Config) (*httptest.Server, *filestore.Store) {
	t.Helper()
	st, err := filestore.Open(filestore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg.Store = st
	svc, err := service.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(svc, api.Config{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, st
}
