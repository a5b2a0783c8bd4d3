package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestCredentialNeverShown: a hello printed, logged or marshalled hides
// its credential; only its frame holds it.
func TestCredentialNeverShown(t *testing.T) {
	parallel(t)
	const secret = "tok-3f9a1c77e2d54b1b"
	h := &Hello{Site: "fra-1", Credential: secret, Versions: Supported, AppliedRevision: 4, AckedSeq: 5, LastSeq: 6}
	var m Message = h

	shown := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		shown["fmt "+verb+" hello"] = fmt.Sprintf(verb, h)
		shown["fmt "+verb+" *hello"] = fmt.Sprintf(verb, *h)
		shown["fmt "+verb+" message"] = fmt.Sprintf(verb, m)
		shown["fmt "+verb+" credential"] = fmt.Sprintf(verb, h.Credential)
	}
	shown["Sprint"] = fmt.Sprint(h, *h, h.Credential)
	shown["Sprintln"] = fmt.Sprintln(h, *h, h.Credential)
	shown["String"] = h.Credential.String()
	shown["GoString"] = h.Credential.GoString()
	for name, v := range map[string]any{"hello": h, "*hello": *h, "credential": h.Credential, "message": m} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal %s: %v", name, err)
		}
		shown["json "+name] = string(b)
	}
	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("hello", "hello", h, "value", *h, "credential", h.Credential, "message", m)
		log.Info("grouped", slog.Group("g", "hello", h), slog.Any("any", h))
		shown["slog "+name] = buf.String()
	}
	for name, s := range shown {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) || strings.Contains(s, fmt.Sprintf("%X", secret)) {
			t.Errorf("%s shows the credential: %s", name, s)
		}
	}
	if !strings.Contains(shown["fmt %+v hello"], "fra-1") || !strings.Contains(shown["fmt %+v hello"], redacted) {
		t.Errorf("%%+v = %s: want the site and %s", shown["fmt %+v hello"], redacted)
	}
	if !strings.Contains(shown["slog json"], `"site":"fra-1"`) {
		t.Errorf("slog does not log the hello's site: %s", shown["slog json"])
	}

	// The frame holds it, and decodes to it.
	frame, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(frame), `"credential":"`+secret+`"`) {
		t.Errorf("the frame lacks the credential: %s", frame)
	}
	got, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.(*Hello).Credential) != secret {
		t.Errorf("decoded credential %q", string(got.(*Hello).Credential))
	}

	// Nor do errors quote it.
	long := *h
	long.Credential = Credential(secret + strings.Repeat("x", MaxCredentialSize))
	for _, err := range []error{long.Validate(), func() error { _, err := Decode(rawFrame(t, &long)); return err }()} {
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("error %v: want one that hides the credential", err)
		}
	}
	if s := fmt.Sprintf("%v|%s", Credential(""), Credential("")); s != "|" {
		t.Errorf("an empty credential shows as %q", s)
	}
}
