package githubloop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/forge/githubloop/githubfake"
	"github.com/glimpse-dev/glimpse/preview"
)

func TestParseAppKey(t *testing.T) {
	t.Parallel()
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for name, in := range map[string][]byte{
		"pkcs1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		"pkcs8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	} {
		got, err := ParseAppKey(in)
		if err != nil || !got.Equal(k) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, in := range map[string][]byte{
		"not PEM": []byte("-----"),
		"EC key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
	} {
		if _, err := ParseAppKey(in); preview.CodeOf(err) != preview.InvalidArgument || strings.Contains(err.Error(), "*") {
			t.Errorf("%s: %v (%v), want InvalidArgument in one plain line", name, err, preview.CodeOf(err))
		}
	}
}

// The app's JWT and installation tokens against the fake, which verifies
// the JWT's RS256 signature with the app's public key and its claims as
// GitHub documents them: the installation is found, its token cached
// until 5 minutes before expires_at and then replaced, a revoked token
// (401) replaced and the call retried, and a wrong key or a clock far
// ahead refused as PermissionDenied without a credential in the message.
func TestAppAuthInstallationTokens(t *testing.T) {
	t.Parallel()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	clock := func() time.Time { return *now.Load() }
	gh := githubfake.New("acme", "app", "")
	gh.AppID, gh.AppKey, gh.InstallationID, gh.TokenTTL, gh.Now = 12345, &key.PublicKey, 777, time.Hour, clock
	srv := httptest.NewServer(gh)
	defer srv.Close()

	app := &AppAuth{AppID: "12345", Key: key, Now: clock}
	jwt, err := app.JWT()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jwt, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct{ Iat, Exp, Iss json.Number }
	json.Unmarshal(body, &claims)
	if iat, _ := claims.Iat.Int64(); iat != t0.Unix()-60 || !strings.Contains(string(hdr), `"alg":"RS256"`) || claims.Iss != "12345" {
		t.Errorf("JWT header %s claims %s", hdr, body)
	}
	if exp, _ := claims.Exp.Int64(); exp <= t0.Unix() || exp > t0.Unix()+600 {
		t.Errorf("exp %d is not within 10 minutes of now %d", exp, t0.Unix())
	}

	rep, err := NewAppReporter("acme/app", app, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	report := func(pr int) error {
		return rep.Report(ctx, Report{PR: pr, State: StateSkipped, Message: "x"})
	}
	for pr := 1; pr <= 3; pr++ {
		if err := report(pr); err != nil {
			t.Fatal(err)
		}
	}
	if n := gh.Issued(); n != 1 || app.InstallationID != 777 {
		t.Errorf("%d tokens issued for installation %d, want 1 for 777", n, app.InstallationID)
	}

	// 56 minutes on: within 5 minutes of expires_at, replaced first.
	t1 := t0.Add(56 * time.Minute)
	now.Store(&t1)
	if err := report(4); err != nil || gh.Issued() != 2 {
		t.Errorf("near expiry: %v, %d tokens issued, want 2", err, gh.Issued())
	}

	// Revoked: the 401 drops the token and the call is retried once.
	gh.RevokeTokens()
	if err := report(5); err != nil || gh.Issued() != 3 || len(gh.Comments(5)) != 1 {
		t.Errorf("after revocation: %v, %d tokens issued, %d comments", err, gh.Issued(), len(gh.Comments(5)))
	}

	// A key GitHub does not know, and a clock 20 minutes fast.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	fast := func() time.Time { return clock().Add(20 * time.Minute) }
	for name, a := range map[string]*AppAuth{
		"wrong key":  {AppID: "12345", Key: other, Now: clock},
		"fast clock": {AppID: "12345", Key: key, Now: fast},
		"wrong app":  {AppID: "999", Key: key, Now: clock},
	} {
		r, _ := NewAppReporter("acme/app", a, srv.URL)
		err := r.Report(ctx, Report{PR: 6, State: StateSkipped, Message: "x"})
		t.Logf("%s: %v", name, err)
		if preview.CodeOf(err) != preview.PermissionDenied {
			t.Errorf("%s: %v (%v), want PermissionDenied", name, err, preview.CodeOf(err))
		}
		if err != nil && (strings.Contains(err.Error(), "eyJ") || strings.Contains(err.Error(), "ghs_")) {
			t.Errorf("%s: a credential in the error: %v", name, err)
		}
	}
	if n := len(gh.Comments(6)); n != 0 {
		t.Errorf("refused apps made %d comments", n)
	}
}
