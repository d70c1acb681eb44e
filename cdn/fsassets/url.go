package fsassets

import (
	"context"
	"net/url"
	"path/filepath"

	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.AssetStores.
const Scheme = "fs"

func init() {
	preview.AssetStores.Register(Scheme, openURL)
}

// DirFromURL returns the directory an fs URL names. The forms are:
//
//	fs:///abs/path      the absolute directory /abs/path
//	fs://localhost/abs  the same, as in file URLs
//	fs:rel/path         rel/path inside home (the GLIMPSE_HOME directory),
//	                    or inside the working directory when home is empty
//	fs://  or  fs:      <home>/assets; an InvalidArgument error without home
//
// Any other host ("fs://relative") is an InvalidArgument error, because a
// host there is almost always a forgotten third slash. The URL takes no
// query parameters.
func DirFromURL(u *url.URL, home string) (string, error) {
	if _, err := preview.QueryParams(u); err != nil {
		return "", err
	}
	if u.Opaque != "" {
		rel := filepath.FromSlash(u.Opaque)
		if filepath.IsAbs(rel) {
			return filepath.Clean(rel), nil
		}
		if home != "" {
			return filepath.Join(home, rel), nil
		}
		return filepath.Abs(rel)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", preview.Errorf(preview.InvalidArgument, "fs://%s...: a host is not allowed; write fs:///absolute/path or fs:relative/path", u.Host)
	}
	if u.Path == "" {
		if home == "" {
			return "", preview.Errorf(preview.InvalidArgument, "fs:// without a path needs a Glimpse home directory (GLIMPSE_HOME)")
		}
		return filepath.Join(home, "assets"), nil
	}
	return filepath.Clean(filepath.FromSlash(u.Path)), nil
}

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.AssetStore, error) {
	dir, err := DirFromURL(u, o.Home)
	if err != nil {
		return nil, err
	}
	return New(dir, &Options{Logger: o.Log()})
}
