using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>
/// What the proxy tells the blob store, off every client's path: a blob or manifest committed locally
/// (<see cref="BlobCache.Committed"/>: recorded in the persisted upload queue before the fill's readers see its end, so a
/// crash right after loses nothing; the uploader then skips what the bucket has), a tag upstream confirmed (its pointer
/// object), and a link earned in a public repository (its <see cref="PublicLink"/> object). The small objects are written
/// in the background, one write per key at a time, and not again while this instance wrote the same thing; a failure
/// costs only the offline answer. Nothing here waits on the engine, and nothing about who may read a private repository
/// goes into the bucket.
/// </summary>
internal sealed class BucketWrites : IDisposable
{
    /// <summary>Objects remembered as written (bounded; forgetting costs one rewrite).</summary>
    private const int WrittenLimit = 10_000;

    private readonly ConcurrentDictionary<string, string> _written = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Write> _pending = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly S3BlobTier _tier;
    private readonly BlobCache _cache;
    private readonly TimeProvider _time;
    private readonly ILogger<BucketWrites> _logger;
    private readonly Action<CachedBlob> _committed;

    public BucketWrites(S3BlobTier tier, BlobUploader uploader, BlobCache cache, LinkRecords links, RepositoryVisibility visibility, TimeProvider time,
        ILogger<BucketWrites> logger)
    {
        _tier = tier;
        _cache = cache;
        _time = time;
        _logger = logger;
        _committed = blob =>
        {
            uploader.Enqueue(blob.Digest, blob.Record.MediaType); // one index insert: the upload itself is the uploader's
            // A fill links the blob to its repository before this runs: when that repository is public, the link is shared,
            // so a parent that never saw the image may serve the bucket's copy while upstream is down.
            foreach (var link in links.LinksOf(blob.Digest))
            {
                if (visibility.IsPublic(link.Registry, link.Repository) == true)
                {
                    PublicLinked(link.Registry, link.Repository, blob.Digest);
                }
            }
        };
        cache.Committed += _committed;
    }

    /// <summary>Upstream confirmed <paramref name="tag"/> as <paramref name="digest"/>: its pointer object is written (the newest wins).</summary>
    public void TagConfirmed(string registry, string repository, string tag, Digest digest, string mediaType)
    {
        if (_tier.Layout.TagKey(registry, repository, tag) is { } key)
        {
            var pointer = new TagPointer(registry, repository, tag, digest.ToString(), mediaType, _time.GetUtcNow());
            Schedule(key, new Write(pointer.Digest, ct => _tier.PutTagAsync(pointer, ct)));
        }
    }

    /// <summary>
    /// Upstream sent <paramref name="digest"/>'s bytes through <paramref name="repository"/>, which it serves without credentials:
    /// the link is shared. Call it only for a repository known public; a private one's links stay with this instance.
    /// </summary>
    public void PublicLinked(string registry, string repository, Digest digest)
    {
        if (_tier.Layout.PublicLinkKey(registry, repository, digest) is { } key)
        {
            var link = new PublicLink(registry, repository, digest.ToString(), _time.GetUtcNow());
            Schedule(key, new Write(link.Digest, ct => _tier.PutPublicLinkAsync(link, ct)));
        }
    }

    /// <summary>Upstream answered a ping (<see cref="RegistryChallenges"/>): the answer is shared (the newest wins).</summary>
    public void PingLearned(string registry, string? challenge, string? redirect)
    {
        if (_tier.Layout.PingKey(registry) is { } key)
        {
            var ping = new SharedPing(registry, challenge, redirect, _time.GetUtcNow());
            Schedule(key, new Write($"{challenge}\n{redirect}", ct => _tier.PutPingAsync(ping, ct)));
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
            _logger.BlobStoreCallFailed("put", key, ex.GetType().Name);
        }
    }

    public void Dispose()
    {
        _cache.Committed -= _committed;
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private sealed record Write(string Version, Func<CancellationToken, Task<TierOutcome>> Put);
}
