package preview

import (
	"encoding/json"
	"testing"
	"time"
)

func TestIdleTimeoutJSONAndText(t *testing.T) {
	for _, tc := range []struct {
		in         IdleTimeout
		json, text string
	}{
		{IdleTimeout{After: 15 * time.Minute, Source: IdleFromDefault}, `{"after":"15m0s","seconds":900,"source":"default"}`, "15m (default)"},
		{IdleTimeout{After: 2 * time.Second, Source: IdleFromApp}, `{"after":"2s","seconds":2,"source":"glimpse.yaml"}`, "2s (glimpse.yaml)"},
		{IdleTimeout{After: 90 * time.Minute, Source: IdleFromServe}, `{"after":"1h30m0s","seconds":5400,"source":"serve"}`, "1h30m (serve)"},
		{IdleTimeout{After: 2 * time.Hour, Source: IdleFromServe}, `{"after":"2h0m0s","seconds":7200,"source":"serve"}`, "2h (serve)"},
		{IdleTimeout{AlwaysOn: true, Source: IdleFromApp}, `{"alwaysOn":true,"source":"glimpse.yaml"}`, "never (always-on, glimpse.yaml)"},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.json {
			t.Errorf("json of %+v = %s, %v; want %s", tc.in, b, err, tc.json)
		}
		var back IdleTimeout
		if err := json.Unmarshal(b, &back); err != nil || back != tc.in {
			t.Errorf("json round trip of %+v = %+v, %v", tc.in, back, err)
		}
		if s := tc.in.String(); s != tc.text {
			t.Errorf("%+v.String() = %q; want %q", tc.in, s, tc.text)
		}
	}
	var bad IdleTimeout
	if err := json.Unmarshal([]byte(`{"after":"soon","source":"serve"}`), &bad); CodeOf(err) != InvalidArgument {
		t.Errorf("malformed after = %v; want InvalidArgument", err)
	}
}

// The app's glimpse.yaml beats the daemon's setting; a preview without a
// function has no idle timeout.
func TestIdlePrecedence(t *testing.T) {
	serve := IdleTimeout{After: 7 * time.Minute, Source: IdleFromServe}
	if got := appIdle(map[string]string{AnnotationIdleAfter: "3m"}); got == nil || *got != (IdleTimeout{After: 3 * time.Minute, Source: IdleFromApp}) {
		t.Errorf("idle-after 3m = %+v", got)
	}
	if got := appIdle(map[string]string{AnnotationIdleAfter: "3m", AnnotationAlwaysOn: "true"}); got == nil || !got.AlwaysOn {
		t.Errorf("always-on = %+v", got)
	}
	for _, ann := range []map[string]string{nil, {AnnotationIdleAfter: "0s"}, {AnnotationIdleAfter: "later"}} {
		if got := appIdle(ann); got != nil {
			t.Errorf("annotations %v set idle %+v; want none (the daemon's)", ann, got)
		}
	}
	list := DefaultIdle([]Preview{
		{App: "a", Function: "a-pr-1", Idle: appIdle(map[string]string{AnnotationIdleAfter: "3m"})},
		{App: "b", Function: "b-pr-1"},
		{App: "static"},
	}, serve)
	if list[0].Idle.Source != IdleFromApp || list[0].Idle.After != 3*time.Minute {
		t.Errorf("app setting = %+v; want glimpse.yaml 3m", list[0].Idle)
	}
	if list[1].Idle == nil || *list[1].Idle != serve {
		t.Errorf("no app setting = %+v; want the daemon's", list[1].Idle)
	}
	if list[2].Idle != nil {
		t.Errorf("static-only preview has idle %+v", list[2].Idle)
	}
}
