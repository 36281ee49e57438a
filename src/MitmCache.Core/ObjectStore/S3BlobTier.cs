using System.Security.Cryptography;
using System.Text.Json;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// The shared blob tier on an S3 bucket: a second level behind the local disk, never a dependency. Blobs and
/// manifests by digest, and one small object per tag (<see cref="ObjectLayout"/>). Every call goes through the
/// breaker (<see cref="EngineCalls"/>): a dead or erroring engine answers <see cref="TierOutcome.Unavailable"/>
/// at once after its first short timeout, and the caller goes upstream. Nothing here decides who may read
/// what: the bucket holds every private layer, and the caller serves a blob from it under the same rules as a
/// local one.
/// </summary>
internal sealed class S3BlobTier : IDisposable
{
    private const int TagObjectLimit = 64 * 1024;
    /// <summary>The small objects' format (tag pointers, public links, ping answers).</summary>
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly AmazonS3Client _client;
    private readonly EngineCalls _calls;
    private readonly ObjectWriter _writer;
    private readonly BlobStoreMetrics _metrics;
    private readonly ILogger _logger;

    public S3BlobTier(BlobStoreSettings settings, AWSCredentials credentials, BlobStoreMetrics metrics, TimeProvider time, ILogger<S3BlobTier> logger)
    {
        Settings = settings;
        Layout = new ObjectLayout(settings.Prefix);
        Breaker = new CircuitBreaker(settings.BreakerOpen, settings.BreakerMaxOpen, time);
        _client = S3ClientFactory.Create(settings, credentials);
        _calls = new EngineCalls(settings, Breaker, metrics, logger);
        _writer = new ObjectWriter(_client, _calls, settings, metrics, logger);
        _metrics = metrics;
        _logger = logger;
        metrics.ObserveBreaker(() => Breaker.State);
    }

    public BlobStoreSettings Settings { get; }

    public ObjectLayout Layout { get; }

    public CircuitBreaker Breaker { get; }

    public BlobStoreMetrics Metrics => _metrics;

    /// <summary>For <c>/readyz</c>: the tier never makes the proxy unready, only degraded.</summary>
    public bool IsHealthy => Breaker.State == BreakerState.Closed;

    /// <summary>Why the tier is skipped now, for <c>/readyz</c>; null when healthy.</summary>
    public string? DegradedReason => Breaker.Reason is { } reason
        ? $"blob store {Settings.Location} unavailable since {Breaker.OpenedAt:HH:mm:ss}Z ({reason}); next try at {Breaker.RetryAt:HH:mm:ss}Z"
        : null;

    /// <summary>Whether the object exists, and its size (HEAD).</summary>
    public async Task<TierHead> HeadAsync(Digest digest, CancellationToken ct)
    {
        var key = Layout.BlobKey(digest);
        var result = await _calls.RunAsync("head", key, d => _client.GetObjectMetadataAsync(Settings.Bucket, key, d.Token), ct);
        return result.Value is { } head
            ? new TierHead(TierOutcome.Found, head.ContentLength, head.Headers.ContentType)
            : new TierHead(result.Outcome);
    }

    /// <summary>
    /// Opens a blob or manifest for reading from <paramref name="offset"/> (to resume a fill). See <see cref="TierRead"/>:
    /// the caller verifies the digest and reports a mismatch with <see cref="DeleteCorruptAsync"/>.
    /// </summary>
    public async Task<TierRead> OpenReadAsync(Digest digest, long offset, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var key = Layout.BlobKey(digest);
        var result = await _calls.RunAsync("get", key, async d =>
        {
            var request = new GetObjectRequest { BucketName = Settings.Bucket, Key = key };
            if (offset > 0)
            {
                request.ByteRange = new ByteRange($"bytes={offset}-");
            }

            var response = await _client.GetObjectAsync(request, d.Token);
            // An engine that ignores Range sends the whole object (200, no Content-Range): the body then starts at 0.
            var (start, total) = TotalFromContentRange(response.ContentRange) is { } ranged ? (offset, ranged) : (0L, response.ContentLength);
            var body = new TierReadStream(response, d, _calls, _metrics, Settings, key, response.ContentLength);
            return new TierRead(body, total, start, response.Headers.ContentType);
        }, ct, keepDeadline: true);

        switch (result.Outcome)
        {
            case TierOutcome.Found:
                _metrics.Hit("blob");
                return result.Value!;
            case TierOutcome.NotFound:
                _metrics.Miss("blob");
                return TierRead.NotFound;
            default:
                return TierRead.Unavailable;
        }
    }

    /// <summary>
    /// Reads a whole blob into <paramref name="destination"/> and verifies it against its digest, the way a fill into
    /// a temp file would: <see cref="TierOutcome.Found"/> only when every byte matched. A mismatch deletes the object
    /// (<see cref="TierOutcome.Corrupt"/>) and the destination's bytes must be thrown away; so must a partial copy
    /// when the engine fails midway (<see cref="TierOutcome.Unavailable"/>).
    /// </summary>
    public async Task<TierOutcome> CopyVerifiedAsync(Digest digest, Stream destination, CancellationToken ct)
    {
        await using var read = await OpenReadAsync(digest, 0, ct);
        if (read.Body is not { } body)
        {
            return read.Outcome;
        }

        using var hash = digest.Algorithm == Digest.Sha256 ? (HashAlgorithm)SHA256.Create() : SHA512.Create();
        await using (var hashing = new CryptoStream(destination, hash, CryptoStreamMode.Write, leaveOpen: true))
        {
            var copy = await StreamCopier.CopyAsync(body, hashing, ct);
            switch (copy.Failure)
            {
                case CopyFailure.Canceled:
                    ct.ThrowIfCancellationRequested();
                    return TierOutcome.Unavailable; // the body stalled: the breaker knows
                case CopyFailure.Read:
                    return TierOutcome.Unavailable;
                case CopyFailure.Write:
                    throw new IOException("writing a blob read from the blob store failed", copy.Error);
            }
        }

        if (digest.Matches(hash.Hash))
        {
            return TierOutcome.Found;
        }

        await DeleteCorruptAsync(digest, ct);
        return TierOutcome.Corrupt;
    }

    /// <summary>
    /// Uploads a committed local file (<see cref="ObjectWriter"/>): hashed first, so bytes that do not match their
    /// name never reach the bucket; one PUT, or parts above <see cref="BlobStoreSettings.MultipartThreshold"/>.
    /// </summary>
    public Task<UploadOutcome> UploadAsync(Digest digest, string path, string mediaType, CancellationToken ct) =>
        _writer.UploadAsync(digest, Layout.BlobKey(digest), path, mediaType, ct);

    /// <summary>Deletes a blob or manifest (found corrupt, or for tests). Deleting what is not there succeeds.</summary>
    public async Task<TierOutcome> DeleteAsync(Digest digest, CancellationToken ct)
    {
        var key = Layout.BlobKey(digest);
        return (await _calls.RunAsync("delete", key, d => _client.DeleteObjectAsync(Settings.Bucket, key, d.Token), ct)).Outcome;
    }

    /// <summary>The caller found an object whose bytes do not match its digest: it is counted, logged and deleted.</summary>
    public async Task<TierOutcome> DeleteCorruptAsync(Digest digest, CancellationToken ct)
    {
        _metrics.Corrupt();
        var outcome = await DeleteAsync(digest, ct);
        _logger.BlobStoreObjectCorrupt(Layout.BlobKey(digest), outcome == TierOutcome.Found ? "done" : "failed, it will be found again");
        return outcome;
    }

    /// <summary>Records a tag's digest, once upstream has confirmed it. A name outside the grammar is not stored (NotFound).</summary>
    public Task<TierOutcome> PutTagAsync(TagPointer pointer, CancellationToken ct) =>
        Layout.TagKey(pointer.Registry, pointer.Repository, pointer.Tag) is { } key && Digest.TryParse(pointer.Digest, out _)
            ? PutJsonAsync("tag_put", key, pointer, ct)
            : Task.FromResult(TierOutcome.NotFound);

    /// <summary>The tag's last confirmed digest and media type, as some instance of the cluster stored it.</summary>
    public Task<EngineResult<TagPointer>> GetTagAsync(string registry, string repository, string tag, CancellationToken ct) =>
        GetJsonAsync<TagPointer>("tag_get", "tag", Layout.TagKey(registry, repository, tag),
            p => p.Registry == registry && p.Repository == repository && p.Tag == tag && Digest.TryParse(p.Digest, out _) && MediaTypes.IsManifest(p.MediaType), ct);

    /// <summary>
    /// Records that upstream sent <see cref="PublicLink.Digest"/>'s bytes through a repository known public (see
    /// <see cref="PublicLink"/>). Only public links are shared: who may read a private repository stays per instance.
    /// </summary>
    public Task<TierOutcome> PutPublicLinkAsync(PublicLink link, CancellationToken ct) =>
        Digest.TryParse(link.Digest, out var digest) && Layout.PublicLinkKey(link.Registry, link.Repository, digest) is { } key
            ? PutJsonAsync("link_put", key, link, ct)
            : Task.FromResult(TierOutcome.NotFound);

    /// <summary>The public link of <paramref name="digest"/> to the repository, when some instance of the cluster recorded one.</summary>
    public Task<EngineResult<PublicLink>> GetPublicLinkAsync(string registry, string repository, Digest digest, CancellationToken ct) =>
        GetJsonAsync<PublicLink>("link_get", "link", Layout.PublicLinkKey(registry, repository, digest),
            l => l.Registry == registry && l.Repository == repository && l.Digest == digest.ToString(), ct);

    /// <summary>Records a registry's ping answer (<see cref="SharedPing"/>). A name outside the grammar is not stored (NotFound).</summary>
    public Task<TierOutcome> PutPingAsync(SharedPing ping, CancellationToken ct) =>
        Layout.PingKey(ping.Registry) is { } key && ping.IsValidFor(ping.Registry)
            ? PutJsonAsync("ping_put", key, ping, ct)
            : Task.FromResult(TierOutcome.NotFound);

    /// <summary>The registry's ping answer, as some instance of the cluster stored it.</summary>
    public Task<EngineResult<SharedPing>> GetPingAsync(string registry, CancellationToken ct) =>
        GetJsonAsync<SharedPing>("ping_get", "ping", Layout.PingKey(registry), p => p.IsValidFor(registry), ct);

    private async Task<TierOutcome> PutJsonAsync<T>(string operation, string key, T value, CancellationToken ct)
    {
        var request = new PutObjectRequest { BucketName = Settings.Bucket, Key = key, ContentBody = JsonSerializer.Serialize(value, Json), ContentType = "application/json" };
        return (await _calls.RunAsync(operation, key, d => _client.PutObjectAsync(request, d.Token), ct)).Outcome;
    }

    /// <summary>A small JSON object, read back only when it parses and <paramref name="valid"/> (its names match its key).</summary>
    private async Task<EngineResult<T>> GetJsonAsync<T>(string operation, string kind, string? key, Func<T, bool> valid, CancellationToken ct)
        where T : class
    {
        if (key is null)
        {
            return new(TierOutcome.NotFound, null);
        }

        var result = await _calls.RunAsync<T?>(operation, key, async d =>
        {
            using var response = await _client.GetObjectAsync(Settings.Bucket, key, d.Token);
            if (response.ContentLength > TagObjectLimit)
            {
                return null;
            }

            try
            {
                return await JsonSerializer.DeserializeAsync<T>(response.ResponseStream, Json, d.Token) is { } value && valid(value) ? value : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }, ct);
        if (result.Outcome == TierOutcome.Found && result.Value is null)
        {
            _logger.BlobStoreTagInvalid(key);
            result = new(TierOutcome.NotFound, null);
        }

        if (result.Outcome != TierOutcome.Unavailable)
        {
            (result.Outcome == TierOutcome.Found ? (Action<string>)_metrics.Hit : _metrics.Miss)(kind);
        }

        return new(result.Outcome, result.Value);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>The object's size from <c>Content-Range: bytes 100-199/200</c>; null when there is none.</summary>
    private static long? TotalFromContentRange(string? contentRange) =>
        contentRange is { } range && range.LastIndexOf('/') is var slash and > 0
            && long.TryParse(range.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var total)
            ? total
            : null;
}
