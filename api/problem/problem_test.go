package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/credsign/credsign/cloud"
	"github.com/credsign/credsign/secrets"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err    error
		status int
		known  bool
	}{
		{New(http.StatusForbidden, "no"), 403, true},
		{fmt.Errorf("reading: %w", secrets.ErrNotFound), 404, true},
		{fmt.Errorf("writing: %w", secrets.ErrConflict), 409, true},
		{fmt.Errorf("id: %w", secrets.ErrInvalid), 400, true},
		{fmt.Errorf("vault: %w", secrets.ErrUnavailable), 503, true},
		{fmt.Errorf("sign: %w", &cloud.InvalidError{Field: "ttl", Reason: "too long"}), 422, true},
		{&http.MaxBytesError{Limit: 10}, 413, true},
		{errors.New("db password is hunter2"), 500, false},
	}
	for _, c := range cases {
		pe, known := Classify(c.err)
		if pe.Status != c.status || known != c.known {
			t.Errorf("%v: %d %v, want %d %v", c.err, pe.Status, known, c.status, c.known)
		}
	}
}

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, fmt.Errorf("store: %w", secrets.ErrUnavailable), "rid1")
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" || rec.Header().Get("Content-Type") != ContentType {
		t.Errorf("503: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	Write(rec, errors.New("secret s3cr3t leaked in an error"), "rid2")
	var d Document
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 500 || d.Detail != "internal error" || d.RequestID != "rid2" || d.Type != "about:blank" || d.Title != "Internal Server Error" {
		t.Errorf("500: %d %+v", rec.Code, d)
	}
	rec = httptest.NewRecorder()
	Write(rec, &cloud.InvalidError{Field: "ttl", Reason: "too long"}, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Errors) != 1 || d.Errors[0].Field != "ttlSeconds" {
		t.Errorf("ttl field: %+v", d.Errors)
	}
}
