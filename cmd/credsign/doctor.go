package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/credsign/credsign/cloud"
	clisettings "github.com/credsign/credsign/internal/cli"
)

// doctorFlags are the flags of credsign doctor.
type doctorFlags struct {
	fs           *flag.FlagSet
	device       string
	params       paramFlags
	secretFile   string
	clientID     string
	username     string
	password     string
	passwordFile string
	connack      string
	now          string
	json         bool
	id           string
	settings     clisettings.Settings
	url, token   string // with --id, from settings
}

func newDoctorFlags(stderr io.Writer) *doctorFlags {
	f := &doctorFlags{fs: flag.NewFlagSet("doctor", flag.ContinueOnError), params: paramFlags{}}
	f.fs.StringVar(&f.device, "device", "", "the device document {cloud, params, secret, labels} as `FILE` ('-' for standard input)")
	f.fs.Var(f.params, "param", "override a param of the device document as name=value; repeat for each")
	f.fs.StringVar(&f.secretFile, "secret-file", "", "read the device secret from `FILE` instead of the document")
	f.fs.StringVar(&f.clientID, "client-id", "", "the MQTT ClientId the device sent")
	f.fs.StringVar(&f.username, "username", "", "the MQTT username the device sent")
	f.fs.StringVar(&f.password, "password", "", "the MQTT password the device sent (visible in the process list: prefer --password-file)")
	f.fs.StringVar(&f.passwordFile, "password-file", "", "read the password the device sent from `FILE` ('-' for standard input); one trailing newline is dropped")
	f.fs.StringVar(&f.connack, "connack", "", "the broker's CONNACK return code (MQTT 3.1.1: 0-5) or reason code (MQTT 5: 0x86, 134, …), if known")
	f.fs.StringVar(&f.now, "now", "", "when the device was refused: RFC 3339 or Unix seconds (default: the clock)")
	f.fs.BoolVar(&f.json, "json", false, "print the diagnosis as JSON")
	f.fs.StringVar(&f.id, "id", "", "ask a running server to diagnose its device `ID` (POST /v1/devices/ID/doctor) instead of reading --device")
	f.settings.Register(f.fs, "credsign doctor", nil, stderr, true)
	return f
}

// doctorInput is a parsed doctor command line.
type doctorInput struct {
	req     cloud.Request
	got     cloud.Triple
	connack int
}

func (f *doctorFlags) input(args []string, stdin io.Reader, clock func() time.Time) (doctorInput, error) {
	f.fs.SetOutput(io.Discard)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return doctorInput{}, err
		}
		return doctorInput{}, usagef("%v", err)
	}
	if f.fs.NArg() > 0 {
		return doctorInput{}, usagef("unexpected argument %q", f.fs.Arg(0))
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case f.device == "" && f.id == "":
		return doctorInput{}, usagef("--device FILE|- or --id DEVICE is required: the device the triple should have been made from")
	case f.device != "" && f.id != "":
		return doctorInput{}, usagef("give the device once: --device FILE or --id DEVICE, not both")
	case f.id != "" && (f.secretFile != "" || len(f.params) > 0):
		return doctorInput{}, usagef("--secret-file and --param go with --device; with --id the server reads the device")
	case f.id == "" && f.settings.Given(f.fs):
		return doctorInput{}, usagef("--server and --token-file go with --id")
	}
	for _, name := range []string{"client-id", "username"} {
		if !set[name] {
			return doctorInput{}, usagef("--%s is required: the value the device sent (\"\" if it sent none)", name)
		}
	}
	if set["password"] == set["password-file"] {
		return doctorInput{}, usagef("give the password the device sent once: --password or --password-file")
	}
	if f.device == "-" && (f.passwordFile == "-" || f.secretFile == "-") {
		return doctorInput{}, usagef("--device - and a file '-' cannot both read standard input")
	}
	if f.passwordFile == "-" && f.secretFile == "-" {
		return doctorInput{}, usagef("--password-file - and --secret-file - cannot both read standard input")
	}
	in := doctorInput{connack: cloud.NoConnack}
	var err error
	in.got = cloud.Triple{ClientID: f.clientID, Username: f.username, Password: f.password}
	if set["password-file"] {
		if in.got.Password, err = readFile("--password-file", f.passwordFile, stdin); err != nil {
			return doctorInput{}, err
		}
	}
	if f.connack != "" {
		n, err := strconv.ParseInt(f.connack, 0, 32)
		if err != nil || n < 0 || n > 255 {
			return doctorInput{}, usagef("--connack %q: want a CONNACK code from 0 to 255 (decimal or 0x…)", f.connack)
		}
		in.connack = int(n)
	}
	if in.req.Now, err = parseNow(f.now, clock); err != nil {
		return doctorInput{}, err
	}
	if f.id != "" {
		return in, f.remoteInput()
	}
	doc, err := readDevice(f.device, stdin)
	if err != nil {
		return doctorInput{}, err
	}
	in.req.Cloud, in.req.Secret, in.req.Params = doc.Cloud, doc.Secret, map[string]any{}
	for k, v := range doc.Params {
		in.req.Params[k] = v
	}
	for k, v := range f.params {
		in.req.Params[k] = v
	}
	if in.req.Cloud == "" {
		return doctorInput{}, usagef("--device %s: the document names no cloud", f.device)
	}
	if f.secretFile != "" {
		if in.req.Secret, err = readSecret(f.secretFile, stdin); err != nil {
			return doctorInput{}, err
		}
	}
	if in.req.Secret == "" {
		return doctorInput{}, usagef("the device's secret is required: in the document or with --secret-file")
	}
	return in, nil
}

// remoteInput checks the flags of the --id mode.
func (f *doctorFlags) remoteInput() error {
	var err error
	if f.url, err = f.settings.Server(); err != nil {
		return usagef("%v", err)
	}
	if f.token, err = f.settings.Token(); err != nil {
		return usagef("--id needs an admin or provisioner token: %v", err)
	}
	return nil
}

// doctorTimeout bounds the API call of the --id mode.
const doctorTimeout = 30 * time.Second

// remoteDiagnose asks the server to diagnose device f.id
// (POST /v1/devices/{id}/doctor).
func (f *doctorFlags) remoteDiagnose(ctx context.Context, in doctorInput) (cloud.Diagnosis, error) {
	body := map[string]any{"clientId": in.got.ClientID, "username": in.got.Username, "password": in.got.Password}
	if in.connack != cloud.NoConnack {
		body["connack"] = in.connack
	}
	if f.now != "" {
		body["at"] = in.req.Now
	}
	b, err := json.Marshal(body)
	if err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("encoding the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	endpoint := strings.TrimSuffix(f.url, "/") + "/v1/devices/" + url.PathEscape(f.id) + "/doctor"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return cloud.Diagnosis{}, usagef("--server %q: %v", f.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("calling %s: %w", f.url, errors.Unwrap(err))
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("reading the answer of %s: %w", f.url, err)
	}
	if res.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
			// Reason: why a DPoP proof was refused (docs/devices.md).
			Reason string `json:"reason"`
			Errors []struct {
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"errors"`
		}
		_ = json.Unmarshal(raw, &p) // a body that is not a problem leaves the status alone
		msg := fmt.Sprintf("the server answered %s", res.Status)
		if p.Reason != "" {
			msg += " (proof refused: " + p.Reason + ")"
		}
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		for _, e := range p.Errors {
			msg += "; " + e.Field + ": " + e.Reason
		}
		switch res.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
			return cloud.Diagnosis{}, usagef("%s", msg)
		}
		return cloud.Diagnosis{}, errors.New(msg)
	}
	var dg cloud.Diagnosis
	if err := json.Unmarshal(raw, &dg); err != nil {
		return cloud.Diagnosis{}, fmt.Errorf("decoding the answer of %s: %w", f.url, err)
	}
	return dg, nil
}

// readFile reads a small value like readSecret, naming flag in errors.
func readFile(flagName, path string, stdin io.Reader) (string, error) {
	s, err := readSecret(path, stdin)
	var ue *usageError
	if errors.As(err, &ue) {
		return "", usagef("%s%s", flagName, strings.TrimPrefix(ue.msg, "--secret-file"))
	}
	return s, err
}

func runDoctor(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newDoctorFlags(stderr)
	in, err := f.input(args, stdin, time.Now)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: credsign doctor --device FILE|- --client-id X --username Y (--password Z | --password-file F|-) [--connack N] [--now T] [--json]")
			fmt.Fprintln(stdout, "   or: credsign doctor --id DEVICE [--server URL] [--token-file F] --client-id X --username Y (--password Z | --password-file F|-) [--connack N] [--now T] [--json]")
			fmt.Fprintln(stdout, "       (an admin or provisioner token from --token-file, $CREDSIGN_TOKEN or $CREDSIGN_TOKEN_FILE: the server reads the device)")
			fmt.Fprintln(stdout, "Compares a triple captured from a device that the broker refused with what the recipe produces for the device,")
			fmt.Fprintln(stdout, "and names the part that differs and the likely cause, without printing the secret or the expected password.")
			fmt.Fprintf(stdout, "Clouds diagnosed: %s. Exit status 0 when the triple matches, 1 when something differs, 2 on bad input.\n\nflags:\n", strings.Join(registry.DoctorClouds(), ", "))
			f.fs.SetOutput(stdout)
			f.fs.PrintDefaults()
			return exitOK
		}
		return fail(stderr, "doctor", err)
	}
	var dg cloud.Diagnosis
	if f.id != "" {
		dg, err = f.remoteDiagnose(ctx, in)
	} else {
		dg, err = registry.Diagnose(in.req, in.got, in.connack)
	}
	if err != nil {
		return fail(stderr, "doctor", err)
	}
	if f.json {
		if code := writeJSON(stdout, stderr, dg); code != exitOK {
			return code
		}
	} else {
		printDiagnosis(stdout, dg)
	}
	if dg.Match {
		return exitOK
	}
	return exitError
}

// printDiagnosis writes the human report.
func printDiagnosis(w io.Writer, dg cloud.Diagnosis) {
	verdict := "the triple matches the recipe"
	if !dg.Match {
		verdict = "the triple differs from what the recipe produces"
	}
	fmt.Fprintf(w, "%s: %s (judged at %s)\n", dg.Cloud, verdict, dg.At.Format(time.RFC3339))
	for _, fd := range dg.Findings {
		fmt.Fprintf(w, "  %-8s  %-7s  %-8s  %s\n", fd.Part, fd.Status, fd.Confidence, fd.Cause)
	}
}
