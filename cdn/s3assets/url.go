package s3assets

import (
	"context"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/glimpse-dev/glimpse/preview"
)

// Scheme is the URL scheme this package registers in preview.AssetStores.
const Scheme = "s3"

func init() {
	preview.AssetStores.Register(Scheme, openURL)
}

// OptionsFromURL returns the bucket and options an s3 URL names (see the
// package doc for the form). Credentials come from getenv
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE)
// and otherwise from the standard AWS chain; a URL with user info is an
// error, and so is an unknown query parameter.
func OptionsFromURL(u *url.URL, getenv func(string) string) (string, *Options, error) {
	q, err := preview.QueryParams(u, "region", "prefix", "endpoint", "pathStyle", "layout", "uploads")
	if err != nil {
		return "", nil, err
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") {
		return "", nil, preview.Errorf(preview.InvalidArgument, "s3://BUCKET takes no path (got %q); use ?prefix=P", u.Path+u.Opaque)
	}
	o := &Options{
		Region:   q.Get("region"),
		Prefix:   q.Get("prefix"),
		Endpoint: q.Get("endpoint"),
		Layout:   q.Get("layout"),
	}
	if v := q.Get("pathStyle"); v != "" {
		if o.PathStyle, err = strconv.ParseBool(v); err != nil {
			return "", nil, preview.Errorf(preview.InvalidArgument, "pathStyle=%q: want true or false", v)
		}
	}
	if v := q.Get("uploads"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxUploads {
			return "", nil, preview.Errorf(preview.InvalidArgument, "uploads=%q: want a number of concurrent uploads from 1 to %d", v, maxUploads)
		}
		o.Uploads = n
	}
	if id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" || secret != "" {
		if id == "" || secret == "" {
			return "", nil, preview.Errorf(preview.InvalidArgument, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
		}
		o.Credentials = credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))
	}
	o.Profile = getenv("AWS_PROFILE")
	return u.Host, o, nil
}

// maxUploads bounds the uploads URL parameter: beyond it a publish would
// mostly queue inside the HTTP client and the store.
const maxUploads = 256

func openURL(ctx context.Context, u *url.URL, o *preview.OpenOptions) (preview.AssetStore, error) {
	bucket, opts, err := OptionsFromURL(u, o.Env)
	if err != nil {
		return nil, err
	}
	opts.Logger = o.Log()
	return New(ctx, bucket, opts)
}
