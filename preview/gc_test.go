package preview

import (
	"strings"
	"testing"
)

func TestPlanGC(t *testing.T) {
	const (
		dLive   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		dGone   = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		dOther  = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
		dRunner = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
	)
	in := GCInput{
		Tags: map[string]string{
			"pr-1-aaaaaaa":     dLive, // PR 1 gone, same image as live PR 2
			"pr-2-bbbbbbb":     dLive, // live
			"pr-2-ccccccc":     dGone, // live PR, older commit: kept
			"pr-3-ddddddd":     dGone, // gone
			"src-live":         dLive, // shares with kept pr-2-bbbbbbb
			"src-gone":         dOther,
			"src-runs":         dRunner, // a function runs it by digest
			"latest":           dOther,  // not Glimpse's: kept, and so is src-gone, which names the same image
			"pr-10-eeeeeee":    dRunner,
			"pr-x-notapr":      dGone,
			"pr-04-leadzero":   dGone,
			"pr-5-usedbytagfn": dGone, // a function runs repo:pr-5-usedbytagfn
		},
		LivePRs:   map[int]bool{2: true},
		InUse:     map[string]bool{dRunner: true},
		InUseTags: map[string]bool{"pr-5-usedbytagfn": true},
	}
	want := map[string]GCAction{
		"pr-1-aaaaaaa":     GCDelete,
		"pr-2-bbbbbbb":     GCKeep,
		"pr-2-ccccccc":     GCKeep,
		"pr-3-ddddddd":     GCDelete,
		"src-live":         GCKeep,
		"src-gone":         GCKeep, // "latest" names the same image
		"src-runs":         GCKeep,
		"latest":           GCKeep,
		"pr-10-eeeeeee":    GCDelete, // the tag goes; src-runs keeps the image tagged
		"pr-x-notapr":      GCKeep,
		"pr-04-leadzero":   GCKeep,
		"pr-5-usedbytagfn": GCKeep,
	}
	plan := PlanGC(in)
	if len(plan) != len(want) {
		t.Fatalf("plan has %d tags, want %d", len(plan), len(want))
	}
	for i, p := range plan {
		if i > 0 && plan[i-1].Tag >= p.Tag {
			t.Errorf("plan not sorted at %s", p.Tag)
		}
		if p.Action != want[p.Tag] || p.Reason == "" || p.Digest != in.Tags[p.Tag] {
			t.Errorf("%s: %s (%s), want %s", p.Tag, p.Action, p.Reason, want[p.Tag])
		}
	}

	// Without "latest", the source tag of the gone image goes.
	delete(in.Tags, "latest")
	for _, p := range PlanGC(in) {
		if p.Tag == "src-gone" && (p.Action != GCDelete || !strings.Contains(p.Reason, "build cache")) {
			t.Errorf("src-gone without latest: %s (%s), want delete", p.Action, p.Reason)
		}
	}
}

func TestPROfTag(t *testing.T) {
	for tag, want := range map[string]int{"pr-1-abc": 1, "pr-42-3f2c1ab": 42, "pr-0-x": 0, "pr-1": 0, "pr--1-x": 0, "src-1": 0, "pr-01-x": 0} {
		n, ok := prOfTag(tag)
		if (want == 0) == ok || n != want && ok {
			t.Errorf("prOfTag(%q) = %d, %v; want %d", tag, n, ok, want)
		}
	}
	if n, ok := prOfTag(ImageTag(Target{App: "a", PR: 7, Commit: "abcdef0123"})); !ok || n != 7 {
		t.Errorf("prOfTag(ImageTag) = %d, %v", n, ok)
	}
}
