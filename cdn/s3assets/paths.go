package s3assets

import (
	"context"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/glimpse-dev/glimpse/preview"
)

// PathCacheControl is the Cache-Control of the path objects of
// layout=paths: they may change when a prefix is republished, so caches
// revalidate (cheaply, by ETag).
const PathCacheControl = "no-cache"

// pathsDriver is the driver of layout=paths: blobs and manifests as usual,
// and every file of a manifest copied server-side to
// <P>/sites/<prefix>/<path> before the manifest is written.
type pathsDriver struct{ *driver }

var _ preview.AssetPathWriter = (*pathsDriver)(nil)

// WritePaths copies each blob whose path is new or changed to its path
// object (CopyObject, with the file's Content-Type), Uploads at a time,
// and then deletes the path objects previous had and m has not.
func (d *pathsDriver) WritePaths(ctx context.Context, prefix string, m preview.Manifest, previous *preview.Manifest) error {
	var todo []string
	for p, f := range m.Files {
		if previous != nil && previous.Files[p] == f {
			continue
		}
		todo = append(todo, p)
	}
	sort.Strings(todo)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, d.uploads)
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, p := range todo {
		sem <- struct{}{}
		if cctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f := m.Files[p]
			key := d.pathKey(prefix, p)
			_, err := d.client.CopyObject(cctx, &s3.CopyObjectInput{
				Bucket:            aws.String(d.bucket),
				Key:               aws.String(key),
				CopySource:        aws.String(d.bucket + "/" + d.blobKey(f.Digest)),
				MetadataDirective: types.MetadataDirectiveReplace,
				ContentType:       aws.String(f.ContentType),
				CacheControl:      aws.String(PathCacheControl),
			})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = d.classify(err, "CopyObject "+key)
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if previous == nil {
		return nil
	}
	var gone []string
	for p := range previous.Files {
		if _, ok := m.Files[p]; !ok {
			gone = append(gone, d.pathKey(prefix, p))
		}
	}
	return d.deleteKeys(ctx, gone)
}

// DeleteManifest deletes the prefix's path objects and then its manifest,
// so that a failed delete leaves the manifest to find them by.
func (d *pathsDriver) DeleteManifest(ctx context.Context, prefix string) error {
	sm, err := d.GetManifest(ctx, prefix)
	switch {
	case preview.IsNotFound(err):
		return nil
	case err == nil:
		keys := make([]string, 0, len(sm.Manifest.Files))
		for p := range sm.Manifest.Files {
			keys = append(keys, d.pathKey(prefix, p))
		}
		if err := d.deleteKeys(ctx, keys); err != nil {
			return err
		}
	case preview.CodeOf(err) == preview.Internal:
		// Unreadable: its path objects are unknown; delete the manifest
		// anyway (a collection finds the leftovers).
		d.log.Warn("s3assets: deleting an unreadable manifest, its path objects stay", "prefix", prefix, "err", err)
	default:
		return err
	}
	return d.driver.DeleteManifest(ctx, prefix)
}

// deleteKeys removes keys with DeleteObjects, 1,000 per request; missing
// keys are success.
func (d *driver) deleteKeys(ctx context.Context, keys []string) error {
	sort.Strings(keys)
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		objs := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := d.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(d.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return d.classify(err, "DeleteObjects "+keys[0])
		}
		for _, e := range out.Errors {
			switch code := aws.ToString(e.Code); code {
			case "NoSuchKey":
			case "AccessDenied":
				return preview.Errorf(preview.PermissionDenied, "DeleteObjects %s: %s: %s", aws.ToString(e.Key), code, aws.ToString(e.Message))
			default:
				return preview.Errorf(preview.Unavailable, "DeleteObjects %s: %s: %s", aws.ToString(e.Key), code, aws.ToString(e.Message))
			}
		}
		keys = keys[n:]
	}
	return nil
}
