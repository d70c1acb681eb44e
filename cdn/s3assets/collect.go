package s3assets

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/glimpse-dev/glimpse/preview"
)

var _ preview.AssetBlobLister = (*driver)(nil)

// CollectBlobs deletes the blobs no manifest references that are older
// than opts.OlderThan (preview.AssetBucket.CollectBlobs): one ListObjectsV2
// per 1,000 blobs (LastModified is the blob's age), the manifests read as
// List and Manifest read them, then DeleteObjects, 1,000 keys per request.
// S3 has no lock to exclude Publish: the grace period protects the blobs
// of publishes in flight (see preview.AssetBucket.CollectBlobs). Path
// objects of layout=paths are copies and are not blobs; Delete removes
// them.
func (s *Store) CollectBlobs(ctx context.Context, opts preview.BlobCollectOptions) (preview.BlobCollectStats, error) {
	return s.b.CollectBlobs(ctx, opts)
}

// ListBlobs lists the blob prefix.
func (d *driver) ListBlobs(ctx context.Context) ([]preview.AssetBlob, error) {
	var out []preview.AssetBlob
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(d.bucket),
		Prefix:  aws.String(d.blobsPrefix()),
		MaxKeys: aws.Int32(1000),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, d.classify(err, "ListObjectsV2 "+d.blobsPrefix())
		}
		for _, o := range page.Contents {
			dg := "sha256:" + strings.TrimPrefix(aws.ToString(o.Key), d.blobsPrefix())
			if !preview.ValidDigest(dg) {
				continue
			}
			out = append(out, preview.AssetBlob{Digest: dg, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// DeleteBlobs deletes the blobs' objects with DeleteObjects, 1,000 keys
// per request.
func (d *driver) DeleteBlobs(ctx context.Context, digests []string) error {
	keys := make([]string, len(digests))
	for i, dg := range digests {
		keys[i] = d.blobKey(dg)
	}
	return d.deleteKeys(ctx, keys)
}
