//go:build !linux

package plugin

import "os/exec"

// setDeathSignal does nothing here: the plugin watches its parent instead
// (see Serve).
func setDeathSignal(*exec.Cmd) {}
