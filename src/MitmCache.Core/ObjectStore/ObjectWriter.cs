using System.Buffers;
using System.Diagnostics;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>The tier's uploads of committed local files: one PUT, or a multipart upload with a few parts at a time.</summary>
internal sealed class ObjectWriter(AmazonS3Client client, EngineCalls calls, BlobStoreSettings settings, BlobStoreMetrics metrics, ILogger logger)
{
    private const int HashBufferSize = 1 << 20;

    /// <summary>
    /// Uploads a committed local file: hashed first (bytes that do not match their name never reach the bucket),
    /// then one PUT up to <see cref="BlobStoreSettings.MultipartThreshold"/>, parts of <see cref="BlobStoreSettings.PartSize"/>
    /// above it, each streamed from the file a buffer at a time.
    /// </summary>
    public async Task<UploadOutcome> UploadAsync(Digest digest, string key, string path, string mediaType, CancellationToken ct)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return UploadOutcome.SourceMissing;
        }

        using (file)
        {
            var clock = Stopwatch.StartNew();
            var length = RandomAccess.GetLength(file);
            if (!await MatchesAsync(file, length, digest, ct))
            {
                logger.BlobStoreSourceCorrupt(digest.ToString());
                return UploadOutcome.SourceCorrupt;
            }

            var parts = length <= settings.MultipartThreshold
                ? await PutAsync(file, length, key, mediaType, ct)
                : await PutMultipartAsync(file, length, key, mediaType, ct);
            if (parts == 0)
            {
                return UploadOutcome.Unavailable;
            }

            logger.BlobStoreUploaded(digest.ToString(), length, parts, clock.ElapsedMilliseconds);
            return UploadOutcome.Uploaded;
        }
    }

    private async Task<int> PutAsync(SafeFileHandle file, long length, string key, string mediaType, CancellationToken ct)
    {
        var result = await calls.RunAsync("put", key, async d =>
        {
            await using var body = new FileWindowStream(file, 0, length, d, metrics);
            var request = new PutObjectRequest { BucketName = settings.Bucket, Key = key, InputStream = body, ContentType = mediaType, AutoCloseStream = false };
            return await client.PutObjectAsync(request, d.Token);
        }, ct);
        return result.Outcome == TierOutcome.Found ? 1 : 0;
    }

    private async Task<int> PutMultipartAsync(SafeFileHandle file, long length, string key, string mediaType, CancellationToken ct)
    {
        var start = await calls.RunAsync("multipart", key, d => client.InitiateMultipartUploadAsync(
            new InitiateMultipartUploadRequest { BucketName = settings.Bucket, Key = key, ContentType = mediaType }, d.Token), ct);
        if (start.Value?.UploadId is not { } uploadId)
        {
            return 0;
        }

        var completed = false;
        var count = (int)((length + settings.PartSize - 1) / settings.PartSize);
        var parts = new PartETag?[count];
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            // A few parts at a time: each is its own request streamed from its own window of the file.
            var options = new ParallelOptions { MaxDegreeOfParallelism = settings.PartsInParallel, CancellationToken = failed.Token };
            await Parallel.ForEachAsync(Enumerable.Range(0, count), options, async (index, token) =>
            {
                var (offset, number) = (index * settings.PartSize, index + 1);
                var size = Math.Min(settings.PartSize, length - offset);
                var part = await calls.RunAsync("multipart", key, async d =>
                {
                    await using var body = new FileWindowStream(file, offset, size, d, metrics);
                    return await client.UploadPartAsync(new UploadPartRequest
                    {
                        BucketName = settings.Bucket, Key = key, UploadId = uploadId, PartNumber = number, InputStream = body, PartSize = size,
                    }, d.Token);
                }, token);
                if (part.Value is null)
                {
                    await failed.CancelAsync(); // the other parts stop; the upload is aborted below
                    return;
                }

                parts[index] = new PartETag(number, part.Value.ETag);
            });
            if (parts.Any(p => p is null))
            {
                return 0; // the failed part was the last to run, so nothing was left to cancel
            }

            var complete = await calls.RunAsync("multipart", key, d => client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = settings.Bucket, Key = key, UploadId = uploadId, PartETags = [.. parts.Select(p => p!)],
            }, d.Token), ct);
            completed = complete.Outcome == TierOutcome.Found;
            return completed ? count : 0;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return 0; // a part failed (and was counted); the others were stopped
        }
        finally
        {
            if (!completed)
            {
                await AbortQuietlyAsync(key, uploadId);
            }
        }
    }

    /// <summary>Best effort, outside the breaker: parts left by a failed upload cost space until the bucket's lifecycle rule removes them.</summary>
    private async Task AbortQuietlyAsync(string key, string uploadId)
    {
        using var timeout = new CancellationTokenSource(settings.RequestTimeout);
        try
        {
            await client.AbortMultipartUploadAsync(settings.Bucket, key, uploadId, timeout.Token);
        }
        catch (Exception ex) when (ex is AmazonClientException or HttpRequestException or IOException or OperationCanceledException)
        {
            logger.BlobStoreCallFailed("multipart_abort", key, ex.GetType().Name);
        }
    }

    private static async Task<bool> MatchesAsync(SafeFileHandle file, long length, Digest digest, CancellationToken ct)
    {
        using var hash = digest.CreateHash();
        var buffer = ArrayPool<byte>.Shared.Rent(HashBufferSize);
        try
        {
            for (long offset = 0; offset < length;)
            {
                var read = await RandomAccess.ReadAsync(file, buffer.AsMemory(0, (int)Math.Min(HashBufferSize, length - offset)), offset, ct);
                if (read == 0)
                {
                    return false;
                }

                hash.AppendData(buffer, 0, read);
                offset += read;
            }

            return digest.Matches(hash.GetHashAndReset());
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
