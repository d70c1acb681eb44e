package basicauth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRequire(t *testing.T) {
	h := Require("pw", "unauthorized", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	for _, c := range []struct {
		user, pass string
		set        bool
		want       int
	}{
		{User, "pw", true, 204},
		{User, "wrong", true, 401},
		{"root", "pw", true, 401},
		{"", "", false, 401},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.set {
			r.SetBasicAuth(c.user, c.pass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want || (c.want == 401 && w.Header().Get("WWW-Authenticate") == "") {
			t.Errorf("%s:%s = %d, want %d with a challenge on 401", c.user, c.pass, w.Code, c.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth(User, "")
	if Valid(r, "") {
		t.Fatal("an empty password matched")
	}
}
