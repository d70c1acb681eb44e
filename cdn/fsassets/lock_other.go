//go:build !unix

package fsassets

import (
	"context"
	"sync"
)

// lockMu stands in for flock(2) where it is missing: it serialises
// collection against publishing within this process only.
var lockMu sync.RWMutex

func fileLock(ctx context.Context, path string, exclusive bool) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if exclusive {
		lockMu.Lock()
		return lockMu.Unlock, nil
	}
	lockMu.RLock()
	return lockMu.RUnlock, nil
}
