package idle

import (
	"reflect"
	"testing"
	"time"

	"github.com/glimpse-dev/glimpse/preview"
)

func obs(name string, replicas int, last time.Time, inflight int64) preview.Observation {
	return preview.Observation{Activity: preview.Activity{Function: name, LastActivity: last, InFlight: inflight}, Replicas: replicas}
}

func TestPolicy(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	alwaysOn := obs("always", 1, ago(time.Hour), 0)
	alwaysOn.AlwaysOn = true
	short := obs("short", 1, ago(3*time.Second), 0)
	short.IdleAfter = 2 * time.Second
	cases := []struct {
		name string
		p    Policy
		obs  []preview.Observation
		want []string
	}{
		{"idle after default", Policy{}, []preview.Observation{obs("old", 1, ago(15*time.Minute), 0), obs("fresh", 1, ago(14*time.Minute), 0)}, []string{"old"}},
		{"in flight stays awake", Policy{}, []preview.Observation{obs("busy", 1, ago(time.Hour), 1)}, nil},
		{"already asleep", Policy{}, []preview.Observation{obs("zero", 0, ago(time.Hour), 0)}, nil},
		{"always on", Policy{}, []preview.Observation{alwaysOn}, nil},
		{"per-app override", Policy{}, []preview.Observation{short}, []string{"short"}},
		{"never seen counts as long ago", Policy{After: time.Minute}, []preview.Observation{obs("never", 1, time.Time{}, 0)}, []string{"never"}},
		{"cap puts least recently used to sleep", Policy{MaxAwake: 2}, []preview.Observation{
			obs("a", 1, ago(1*time.Minute), 0), obs("b", 1, ago(3*time.Minute), 0),
			obs("c", 1, ago(2*time.Minute), 0), obs("d", 1, ago(4*time.Minute), 2),
		}, []string{"b", "c"}},
		{"cap never sleeps always-on", Policy{MaxAwake: 1}, []preview.Observation{alwaysOn, obs("x", 1, ago(time.Minute), 0)}, []string{"x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Idle(now, c.obs); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Idle = %v, want %v", got, c.want)
			}
		})
	}
}

func BenchmarkPolicy10k(b *testing.B) {
	now := time.Now()
	o := make([]preview.Observation, 10000)
	for i := range o {
		o[i] = obs("f", 1, now.Add(-time.Duration(i)*time.Second), 0)
	}
	p := Policy{MaxAwake: 100}
	b.ReportAllocs()
	for b.Loop() {
		p.Idle(now, o)
	}
}
