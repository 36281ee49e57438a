using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>
/// What the proxy tells the blob store, off every client's path: a blob or manifest committed locally (queued for the
/// uploader, which skips what the bucket has), a tag upstream confirmed (its pointer object), and a link earned in a
/// public repository (its <see cref="PublicLink"/> object). The small objects are written in the background, one write
/// per key at a time, and not again while this instance wrote the same thing; a failure costs only the offline answer.
/// Nothing here waits on the engine, and nothing about who may read a private repository goes into the bucket.
/// </summary>
internal sealed class BucketWrites(S3BlobTier tier, BlobUploader uploader, TimeProvider time, ILogger<BucketWrites> logger) : IDisposable
{
    /// <summary>Objects remembered as written (bounded; forgetting costs one rewrite).</summary>
    private const int WrittenLimit = 10_000;

    private readonly ConcurrentDictionary<string, string> _written = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Write> _pending = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>The post-commit hook: a blob or manifest verified and committed locally is queued for upload.</summary>
    public void Committed(Digest digest, string mediaType) => uploader.Enqueue(digest, mediaType);

    /// <summary>Upstream confirmed <paramref name="tag"/> as <paramref name="digest"/>: its pointer object is written (the newest wins).</summary>
    public void TagConfirmed(string registry, string repository, string tag, Digest digest, string mediaType)
    {
        if (tier.Layout.TagKey(registry, repository, tag) is { } key)
        {
            var pointer = new TagPointer(registry, repository, tag, digest.ToString(), mediaType, time.GetUtcNow());
            Schedule(key, new Write(pointer.Digest, ct => tier.PutTagAsync(pointer, ct)));
        }
    }

    /// <summary>
    /// Upstream sent <paramref name="digest"/>'s bytes through <paramref name="repository"/>, which it serves without credentials:
    /// the link is shared. Call it only for a repository known public; a private one's links stay with this instance.
    /// </summary>
    public void PublicLinked(string registry, string repository, Digest digest)
    {
        if (tier.Layout.PublicLinkKey(registry, repository, digest) is { } key)
        {
            var link = new PublicLink(registry, repository, digest.ToString(), time.GetUtcNow());
            Schedule(key, new Write(link.Digest, ct => tier.PutPublicLinkAsync(link, ct)));
        }
    }

    /// <summary>How many small writes are queued or running (tests wait for zero).</summary>
    public int Pending => _pending.Count;

    private void Schedule(string key, Write write)
    {
        if (_written.TryGetValue(key, out var written) && written == write.Version)
        {
            return;
        }

        if (_pending.TryAdd(key, write))
        {
            _ = Task.Run(() => RunAsync(key));
        }
        else
        {
            _pending[key] = write; // the running writer picks up the newest
        }
    }

    private async Task RunAsync(string key)
    {
        try
        {
            while (_pending.TryGetValue(key, out var write))
            {
                if (await write.Put(_stopping.Token) == TierOutcome.Found)
                {
                    if (_written.Count >= WrittenLimit)
                    {
                        _written.Clear();
                    }

                    _written[key] = write.Version;
                }

                if (_pending.TryRemove(new KeyValuePair<string, Write>(key, write)))
                {
                    return; // nothing newer came meanwhile
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            _pending.TryRemove(key, out _); // stopping
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or Amazon.Runtime.AmazonClientException)
        {
            // Never past here: a small object is an optimisation for the offline case.
            _pending.TryRemove(key, out _);
            logger.BlobStoreCallFailed("put", key, ex.GetType().Name);
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private sealed record Write(string Version, Func<CancellationToken, Task<TierOutcome>> Put);
}
