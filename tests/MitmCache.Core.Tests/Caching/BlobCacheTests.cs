using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Core.Tests.Diagnostics;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

public sealed class BlobCacheTests : IDisposable
{
    private const long SmallCap = 1_000;
    private const long LargeCap = 1L << 30;

    // LiteDB hands times back as local (see CacheIndexTests); a day between events keeps LRU order right in any zone.
    private static readonly TimeSpan s_eventGap = TimeSpan.FromDays(1);
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _directory = new();
    private readonly FakeTimeProvider _time = new();
    private CacheMetrics _metrics = new();
    private MeterTotals? _totals;
    private TestIndex? _index;
    private BlobCache _cache;

    public BlobCacheTests()
    {
        _cache = Open(LargeCap);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _index?.Dispose();
        _totals?.Dispose();
        _directory.Dispose();
    }

    private string TempRoot => _directory.Combine("tmp");

    /// <summary>Opens the index and the cache over the directory; an index still open (the cache before a restart) is closed first.</summary>
    private BlobCache Open(long cap)
    {
        _index?.Dispose();
        _index = new TestIndex(_directory.Combine("index.db"), _time);
        var meter = new Meter(ProxyMeter.Name);
        _totals?.Dispose();
        _totals = new MeterTotals(meter);
        _metrics = new CacheMetrics(meter);
        return new BlobCache(TestSettings.Create(_directory.Path, cap), _time, _metrics, NullLogger<BlobCache>.Instance, _index.Database, _index.Blobs);
    }

    /// <summary>Closes the cache and opens a new one over the same directory, as a restart does.</summary>
    private void Reopen(long cap = LargeCap)
    {
        _cache.Dispose();
        _cache = Open(cap);
    }

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private Digest Store(int length, int seed)
    {
        var bytes = Bytes(length, seed);
        var digest = Digest.Compute(bytes);
        Assert.True(_cache.StoreSmall(digest, bytes, "application/octet-stream"));
        _time.Advance(s_eventGap);
        return digest;
    }

    [Fact]
    public void StoreSmall_NewBlob_TryGetReturnsRecordAndFile()
    {
        var bytes = "{\"schemaVersion\":2}"u8.ToArray();
        var digest = Digest.Compute(bytes);

        Assert.True(_cache.StoreSmall(digest, bytes, "application/vnd.oci.image.manifest.v1+json"));
        var blob = _cache.TryGet(digest);

        Assert.NotNull(blob);
        Assert.Equal(digest, blob.Digest);
        Assert.Equal(digest.ToString(), blob.Record.Id);
        Assert.Equal(bytes.Length, blob.Record.Size);
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", blob.Record.MediaType);
        Assert.Equal(_time.GetUtcNow().UtcDateTime, blob.Record.LastAccess.ToUniversalTime());
        Assert.Equal(bytes, File.ReadAllBytes(blob.Path));
        Assert.StartsWith(_directory.Combine("blobs", "sha256", digest.Hex[..2]), blob.Path, StringComparison.Ordinal);
        Assert.Equal(bytes.Length, _cache.TotalBytes);
        Assert.Empty(Directory.EnumerateFiles(TempRoot));
    }

    [Fact]
    public void TryGet_UnknownDigest_ReturnsNull()
    {
        Assert.Null(_cache.TryGet(Digest.Compute("never stored"u8)));
    }

    [Fact]
    public void TryGet_FileDeletedBehindOurBack_ForgetsEntry()
    {
        var digest = Store(100, 1);
        File.Delete(_cache.TryGet(digest)!.Path);

        Assert.Null(_cache.TryGet(digest));
        Assert.Null(_index!.Blobs.FindBlob(digest));
        Assert.Equal(0, _cache.TotalBytes);
    }

    [Fact]
    public void TryGet_FileDeletedBehindOurBack_ManyReadersAtOnce_SubtractedOnce()
    {
        for (var round = 0; round < 20; round++)
        {
            var kept = Store(1_000, 10_000 + round);
            var gone = Store(100, 20_000 + round);
            File.Delete(_cache.TryGet(gone)!.Path);

            Threads.AtOnce(8, () => _cache.TryGet(gone));

            Assert.Equal(_index!.Blobs.AllBlobs().Sum(b => b.Size), _cache.TotalBytes);
            Assert.NotNull(_cache.TryGet(kept));
        }
    }

    [Fact]
    public void StoreSmall_SameDigestFromManyThreadsAtOnce_CountedOnce()
    {
        for (var round = 0; round < 20; round++)
        {
            var bytes = Bytes(100 + round, round);
            var digest = Digest.Compute(bytes);

            var stored = Threads.AtOnce(8, () => _cache.StoreSmall(digest, bytes, "application/octet-stream"));

            Assert.All(stored, Assert.True);
            Assert.Equal(_index!.Blobs.AllBlobs().Sum(b => b.Size), _cache.TotalBytes);
        }
    }

    [Fact]
    public void StoreSmall_SameDigestAgain_UpdatesMediaTypeWithoutCountingTwice()
    {
        var bytes = Bytes(100, 1);
        var digest = Digest.Compute(bytes);

        Assert.True(_cache.StoreSmall(digest, bytes, "application/octet-stream"));
        Assert.True(_cache.StoreSmall(digest, bytes, "application/vnd.oci.image.index.v1+json"));

        Assert.Equal("application/vnd.oci.image.index.v1+json", _cache.TryGet(digest)!.Record.MediaType);
        Assert.Equal(100, _cache.TotalBytes);
        Assert.Equal(1, _index!.Blobs.CountBlobs().Total);
    }

    [Fact]
    public void EnsureCapacity_UnderCap_EvictsNothing()
    {
        Reopen(SmallCap);
        Store(300, 1);
        Store(300, 2);

        Assert.Equal(0, _cache.EnsureCapacity());
        Assert.Equal(600, _cache.TotalBytes);
    }

    [Fact]
    public void StoreSmall_OverCap_EvictsLeastRecentlyUsedDownToNinetyPercent()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        var c = Store(300, 3);

        var d = Store(300, 4); // 1200 > 1000: evict the oldest until <= 900

        Assert.Null(_cache.TryGet(a));
        Assert.NotNull(_cache.TryGet(b));
        Assert.NotNull(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
        Assert.Equal(900, _cache.TotalBytes);
        Assert.Equal(1, _metrics.Evictions);
        Assert.Equal(300, _metrics.EvictedBytes);
        Assert.False(File.Exists(_directory.Combine("blobs", a.RelativePath)));
    }

    [Fact]
    public void StoreSmall_OverCapAfterTouch_EvictsTheUntouchedBlobFirst()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        var c = Store(300, 3);
        _cache.Touch(a); // a is now the most recently used

        var d = Store(300, 4);

        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
        Assert.NotNull(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
    }

    [Fact]
    public void EnsureCapacity_CapLoweredAtRestart_EvictsByLastAccessIncludingTouches()
    {
        var a = Store(250, 1);
        var b = Store(250, 2);
        var c = Store(250, 3);
        var d = Store(250, 4);
        Reopen(cap: 800); // 1000 bytes now exceed the cap; opening does not evict by itself
        Assert.Equal(1000, _cache.TotalBytes);

        _cache.Touch(a);
        var evicted = _cache.EnsureCapacity(); // target 720: b and c go, a was touched, d is newest

        Assert.Equal(2, evicted);
        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
        Assert.Null(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
        Assert.Equal(500, _cache.TotalBytes);
    }

    [Fact]
    public void EnsureCapacity_BlobWithFillInFlight_Skipped()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        Store(300, 3);
        var (fill, owner) = _cache.JoinOrStart(a);
        Assert.True(owner);

        Store(300, 4);
        _cache.Abandon(fill);

        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
    }

    [Fact]
    public void EnsureCapacity_EvictedBlob_TagsPointingToItDeleted()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        _index!.Tags.PutTag(new TagRecord
        {
            TagKey = TagRecord.MakeTagKey("registry.test", "team/app", "latest"),
            AcceptKey = "oci",
            Digest = a.ToString(),
        });
        Store(300, 2);
        Store(300, 3);

        Store(300, 4);

        Assert.Empty(_index!.Tags.FindTags("registry.test", "team/app", "latest"));
    }

    [Fact]
    public void EnsureCapacity_EvictedBlob_ItsLinksDeleted_OthersKept()
    {
        // Links used to outlive their blob: an evicted blob fetched again through another repository was then
        // served under the old ones too, and a long-lived node's link collection only ever grew.
        Reopen(SmallCap);
        var a = Store(300, 1);
        _index!.Links.Link("registry.test", "team/app", a, _cache.Now);
        _index.Links.Link("registry.test", "team/other", a, _cache.Now);
        var b = Store(300, 2);
        _index.Links.Link("registry.test", "team/app", b, _cache.Now);
        Store(300, 3);

        Store(300, 4);

        Assert.Null(_cache.TryGet(a));
        Assert.Empty(_index.Links.LinksOf(a));
        Assert.False(_index.Links.IsLinked("registry.test", "team/app", a));
        Assert.NotNull(_cache.TryGet(b));
        Assert.True(_index.Links.IsLinked("registry.test", "team/app", b));
    }

    [Fact]
    public async Task EnsureCapacity_EvictedBlobHeldOpenByReader_StaysReadable()
    {
        Reopen(SmallCap);
        var bytes = Bytes(300, 1);
        var a = Digest.Compute(bytes);
        _cache.StoreSmall(a, bytes, "application/octet-stream");
        _time.Advance(s_eventGap);
        var path = _cache.TryGet(a)!.Path;
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

        Store(300, 2);
        Store(300, 3);
        Store(300, 4);
        Assert.False(File.Exists(path));

        var output = new RecordingStream();
        var (outcome, sent) = await BlobReader.CopyAsync(handle, 0, bytes.Length, output, null, CancellationToken.None);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(bytes.Length, sent);
        Assert.Equal(bytes, output.ToArray());
    }

    [Fact]
    public void Reconcile_LeftoverTempFile_Removed()
    {
        var leftover = Path.Combine(TempRoot, "0123456789abcdef.crashed.part");
        File.WriteAllBytes(leftover, [1, 2, 3]);

        Reopen();

        Assert.False(File.Exists(leftover));
    }

    [Fact]
    public void Reconcile_IndexEntryWhoseFileIsGone_Dropped()
    {
        var a = Store(100, 1);
        var b = Store(200, 2);
        var path = _cache.TryGet(a)!.Path;
        _cache.Dispose();
        File.Delete(path);

        _cache = Open(LargeCap);

        Assert.Null(_index!.Blobs.FindBlob(a));
        Assert.NotNull(_index!.Blobs.FindBlob(b));
        Assert.Equal(200, _cache.TotalBytes);
    }

    [Fact]
    public void Reconcile_IndexEntryWhoseFileHasAnotherSize_DroppedAndFileRemoved()
    {
        var a = Store(100, 1);
        var path = _cache.TryGet(a)!.Path;
        _cache.Dispose();
        File.AppendAllText(path, "x");

        _cache = Open(LargeCap);

        Assert.Null(_index!.Blobs.FindBlob(a));
        Assert.False(File.Exists(path));
        Assert.Equal(0, _cache.TotalBytes);
    }

    [Fact]
    public void Reconcile_UnindexedFileMatchingItsDigest_AdoptedWithSniffedMediaType()
    {
        var manifest = Encoding.UTF8.GetBytes("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}""");
        var digest = Digest.Compute(manifest);
        var path = _directory.Combine("blobs", digest.RelativePath);
        _cache.Dispose();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, manifest);

        _cache = Open(LargeCap);

        var record = _index!.Blobs.FindBlob(digest);
        Assert.NotNull(record);
        Assert.Equal(manifest.Length, record.Size);
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", record.MediaType);
        Assert.Equal(manifest.Length, _cache.TotalBytes);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void Reconcile_UnindexedBinaryFileMatchingItsDigest_AdoptedAsOctetStream()
    {
        var bytes = Bytes(500, 7);
        var digest = Digest.Compute(bytes);
        var path = _directory.Combine("blobs", digest.RelativePath);
        _cache.Dispose();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);

        _cache = Open(LargeCap);

        Assert.Equal("application/octet-stream", _cache.TryGet(digest)!.Record.MediaType);
    }

    [Fact]
    public void Reconcile_UnindexedFileNotMatchingItsDigest_Removed()
    {
        var digest = Digest.Compute("the real content"u8);
        var path = _directory.Combine("blobs", digest.RelativePath);
        _cache.Dispose();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "tampered content");

        _cache = Open(LargeCap);

        Assert.False(File.Exists(path));
        Assert.Null(_index!.Blobs.FindBlob(digest));
        Assert.Equal(0, _cache.TotalBytes);
    }

    [Fact]
    public void Reconcile_FileWhoseNameIsNotADigest_Ignored()
    {
        var stray = _directory.Combine("blobs", "sha256", "ab", "README");
        _cache.Dispose();
        Directory.CreateDirectory(Path.GetDirectoryName(stray)!);
        File.WriteAllText(stray, "not a blob");

        _cache = Open(LargeCap);

        Assert.True(File.Exists(stray));
        Assert.Equal(0, _index!.Blobs.CountBlobs().Total);
    }

    [Fact]
    public void Reconcile_IndexSurvivesRestart_TotalBytesRestored()
    {
        var a = Store(123, 1);

        Reopen();

        Assert.NotNull(_cache.TryGet(a));
        Assert.Equal(123, _cache.TotalBytes);
    }

    [Fact]
    public void JoinOrStart_SecondCaller_JoinsTheSameFill()
    {
        var digest = Digest.Compute("x"u8);

        var (first, firstOwns) = _cache.JoinOrStart(digest);
        var (second, secondOwns) = _cache.JoinOrStart(digest);

        Assert.True(firstOwns);
        Assert.False(secondOwns);
        Assert.Same(first, second);
        Assert.Equal(1, _cache.InFlightCount);
        Assert.StartsWith(TempRoot, first.TempPath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Abandon_OwnerGivesUp_JoinersSeeAbandonedAndNextCallerOwnsANewFill()
    {
        var digest = Digest.Compute("x"u8);
        var (first, _) = _cache.JoinOrStart(digest);

        _cache.Abandon(first);
        var (next, owns) = _cache.JoinOrStart(digest);

        Assert.Equal(FillOutcome.Abandoned, await first.Completion);
        Assert.Null(await first.Head);
        Assert.True(owns);
        Assert.NotSame(first, next);
    }

    [Fact]
    public async Task StartFill_GoodBody_CommittedIndexedAndNoTempLeft()
    {
        var body = Bytes(200_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/vnd.oci.image.layer.v1.tar+gzip"));
        var outcome = await fill.Completion.WaitAsync(s_timeout);

        Assert.Equal(FillOutcome.Committed, outcome);
        Assert.Equal(new FillHead(body.Length, "application/vnd.oci.image.layer.v1.tar+gzip", ProvesAccess: true), await fill.Head);
        var blob = _cache.TryGet(digest);
        Assert.NotNull(blob);
        Assert.Equal(body.Length, blob.Record.Size);
        Assert.Equal("application/vnd.oci.image.layer.v1.tar+gzip", blob.Record.MediaType);
        Assert.Equal(body, File.ReadAllBytes(blob.Path));
        Assert.Equal(fill.FinalPath, blob.Path);
        Assert.Empty(Directory.EnumerateFiles(TempRoot));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(body.Length, _totals!.Sum("mitmcache_upstream_bytes_total"));
        Assert.Equal(1, _totals.Sum("mitmcache_fills_total"));
    }

    [Fact]
    public async Task StartFill_WrongBytes_DigestMismatchNothingIndexedNoTempLeft()
    {
        var expected = Bytes(100_000, 1);
        var digest = Digest.Compute(expected);
        var (fill, _) = _cache.JoinOrStart(digest);

        _cache.StartFill(fill, Body(new ByteArrayContent(Bytes(100_000, 2)), "application/octet-stream"));
        var outcome = await fill.Completion.WaitAsync(s_timeout);

        Assert.Equal(FillOutcome.DigestMismatch, outcome);
        AssertNothingKept(digest, fill);
        Assert.Equal(1, _totals!.Sum("mitmcache_upstream_errors_total", ("class", "digestmismatch")));
    }

    [Fact]
    public async Task StartFill_ContentLengthLargerThanBody_Truncated()
    {
        var body = Bytes(10_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var content = new ByteArrayContent(body);
        content.Headers.ContentLength = body.Length + 10;

        _cache.StartFill(fill, Body(content, "application/octet-stream"));

        Assert.Equal(FillOutcome.Truncated, await fill.Completion.WaitAsync(s_timeout));
        AssertNothingKept(digest, fill);
    }

    [Fact]
    public async Task StartFill_BodyLongerThanContentLength_Truncated()
    {
        var body = Bytes(10_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var content = new ByteArrayContent([.. body, 0, 0]);
        content.Headers.ContentLength = body.Length;

        _cache.StartFill(fill, Body(content, "application/octet-stream"));

        Assert.Equal(FillOutcome.Truncated, await fill.Completion.WaitAsync(s_timeout));
        AssertNothingKept(digest, fill);
    }

    [Fact]
    public async Task StartFill_UpstreamBreaksMidBody_UpstreamError()
    {
        var body = Bytes(10_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();

        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length));
        await pipe.Writer.WriteAsync(body.AsMemory(0, 5_000));
        await pipe.Writer.CompleteAsync(new IOException("connection reset by peer"));

        Assert.Equal(FillOutcome.UpstreamError, await fill.Completion.WaitAsync(s_timeout));
        AssertNothingKept(digest, fill);
    }

    [Theory]
    [InlineData(5_000, true)] // the rest from exactly the byte reached: committed, the digest covering both parts
    [InlineData(4_000, false)] // an answer that starts elsewhere is not taken: the fill fails as without a resume
    public async Task StartFill_BodyBreaksMidWay_TheOriginIsAskedForTheRestFromTheByteReached(int restStartsAt, bool taken)
    {
        var body = Bytes(10_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var origin = new RestOrigin(body, restStartsAt);
        var broken = new OriginBody(new BreakingStream(body, breakAt: 5_000), 0, body.Length, "application/octet-stream", ProvesAccess: true);

        _cache.StartFill(fill, broken, resume: origin);

        Assert.Equal(taken ? FillOutcome.Committed : FillOutcome.UpstreamError, await fill.Completion.WaitAsync(s_timeout));
        Assert.Equal(5_000, origin.AskedFrom.First());
        if (taken)
        {
            Assert.Equal(body, File.ReadAllBytes(_cache.TryGet(digest)!.Path));
        }
        else
        {
            Assert.Single(origin.AskedFrom); // a wrong answer ends the resumes
            AssertNothingKept(digest, fill);
        }
    }

    /// <summary>The first <paramref name="breakAt"/> bytes of <paramref name="blob"/>, then a connection reset.</summary>
    private sealed class BreakingStream(byte[] blob, int breakAt) : MemoryStream(blob, 0, breakAt)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadAsync(buffer, cancellationToken);
            return read > 0 ? read : throw new IOException("connection reset by peer");
        }
    }

    /// <summary>An origin that answers any fetch with the blob from <paramref name="startsAt"/>, whatever was asked.</summary>
    private sealed class RestOrigin(byte[] blob, int startsAt) : IBlobOrigin
    {
        public List<long> AskedFrom { get; } = [];

        public Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
        {
            AskedFrom.Add(offset);
            return Task.FromResult<OriginAnswer>(new OriginBody(new MemoryStream(blob, startsAt, blob.Length - startsAt), startsAt, blob.Length, "application/octet-stream", ProvesAccess: true));
        }
    }

    [Fact]
    public async Task StartFill_TempDirectoryGone_StorageError()
    {
        var digest = Digest.Compute("x"u8);
        var (fill, _) = _cache.JoinOrStart(digest);
        Directory.Delete(TempRoot, recursive: true);

        var started = _cache.StartFill(fill, Body(new ByteArrayContent("x"u8.ToArray()), "application/octet-stream"));

        Assert.False(started);
        Assert.Equal(FillOutcome.StorageError, await fill.Completion.WaitAsync(s_timeout));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.True(_cache.IsStorageDegraded);
    }

    [Fact]
    public async Task StartFill_JoinerReadsGrowingTempFile_ReceivesAllBytesOnlyAfterCommit()
    {
        var body = Bytes(300_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var (joined, owner) = _cache.JoinOrStart(digest);
        Assert.False(owner);
        var pipe = new Pipe();

        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length));
        var head = await joined.Head.WaitAsync(s_timeout);
        using var handle = File.OpenHandle(joined.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var output = new RecordingStream();
        var copy = BlobReader.CopyAsync(handle, 0, head!.Size!.Value, output, joined, CancellationToken.None);

        await pipe.Writer.WriteAsync(body.AsMemory(0, 100_000));
        await output.WaitForCountAsync(100_000);
        Assert.False(copy.IsCompleted);
        await pipe.Writer.WriteAsync(body.AsMemory(100_000));
        await pipe.Writer.CompleteAsync();
        var (outcome, sent) = await copy.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(body.Length, sent);
        Assert.Equal(body, output.ToArray());
        Assert.Equal(FillOutcome.Committed, await joined.Completion);
        Assert.NotNull(_cache.TryGet(digest));
    }

    [Fact]
    public async Task StartFill_ReaderGoesAway_FillStillCommits()
    {
        var body = Bytes(200_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();
        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length));
        using var handle = File.OpenHandle(fill.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var client = new CancellationTokenSource();
        var output = new RecordingStream();
        var copy = BlobReader.CopyAsync(handle, 0, body.Length, output, fill, client.Token);

        await pipe.Writer.WriteAsync(body.AsMemory(0, 50_000));
        await output.WaitForCountAsync(50_000);
        client.Cancel();
        Assert.Equal(ReadOutcome.ClientGone, (await copy.WaitAsync(s_timeout)).Outcome);
        await pipe.Writer.WriteAsync(body.AsMemory(50_000));
        await pipe.Writer.CompleteAsync();

        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
        Assert.Equal(body, File.ReadAllBytes(_cache.TryGet(digest)!.Path));
    }

    [Fact]
    public async Task Dispose_FillRunning_FillEndsWithUpstreamError()
    {
        var digest = Digest.Compute("never finished"u8);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();
        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", 100));
        await pipe.Writer.WriteAsync(new byte[10]);

        Reopen();

        Assert.Equal(FillOutcome.UpstreamError, await fill.Completion.WaitAsync(s_timeout));
    }

    [Fact]
    public async Task StartFill_IndexEngineFailsWhileEvictingAfterCommit_FillStillEndsAndLeavesTheMap()
    {
        Reopen(SmallCap);
        var body = Bytes(2 * (int)SmallCap, 41); // over the cap: the commit is followed by an eviction pass
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"), committed: _ => KillIndexEngine());

        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(body, File.ReadAllBytes(fill.FinalPath));
    }

    [Fact]
    public async Task StartFill_IndexEngineFailsAtCommit_StorageErrorAndNoFileLeftWithoutEntry()
    {
        var body = Bytes(100_000, 42);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();
        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length));
        await pipe.Writer.WriteAsync(body);
        while (fill.Written < body.Length)
        {
            await fill.WaitForAsync(fill.Written, CancellationToken.None).WaitAsync(s_timeout);
        }

        KillIndexEngine(); // the next index call (the commit's) meets a closed engine
        await pipe.Writer.CompleteAsync();

        Assert.Equal(FillOutcome.StorageError, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.IsStorageDegraded);
        Assert.False(File.Exists(fill.FinalPath)); // not committed but unindexed
        Assert.Null(_cache.TryGet(digest));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(1, _totals!.Sum("mitmcache_fills_completed_total", ("outcome", "storageerror")));
    }

    [UnixFact]
    public async Task StartFill_BlobDirectoryRefusesTheMove_StorageErrorBreakerTrips()
    {
        var body = Bytes(10_000, 43);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var directory = Path.GetDirectoryName(fill.FinalPath)!;
        Directory.CreateDirectory(directory);
        using var refusing = OperatingSystem.IsWindows() ? null : RefuseWrites(directory);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"));

        Assert.Equal(FillOutcome.StorageError, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.IsStorageDegraded);
        Assert.Null(_cache.TryGet(digest));
        Assert.Equal(0, _cache.InFlightCount);
    }

    [Fact]
    public async Task Committed_FillAndNewManifest_RaisedOnceEach_NotForAManifestAlreadyStored()
    {
        var seen = new List<CachedBlob>();
        _cache.Committed += blob => seen.Add(blob);
        _cache.Committed += _ => throw new InvalidOperationException("a subscriber that fails");
        var body = Bytes(50_000, 44);
        var layer = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(layer);
        var manifest = "{\"schemaVersion\":2}"u8.ToArray();
        var manifestDigest = Digest.Compute(manifest);

        _cache.StartFill(fill, Body(new ByteArrayContent(body), "application/octet-stream"));
        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
        Assert.True(_cache.StoreSmall(manifestDigest, manifest, "application/vnd.oci.image.manifest.v1+json"));
        Assert.True(_cache.StoreSmall(manifestDigest, manifest, "application/vnd.oci.image.manifest.v1+json"));

        Assert.Equal([layer, manifestDigest], seen.Select(b => b.Digest));
        Assert.Equal(body.Length, seen[0].Record.Size);
        Assert.Equal(body, File.ReadAllBytes(seen[0].Path));
        Assert.Equal("application/vnd.oci.image.manifest.v1+json", seen[1].Record.MediaType);
    }

    /// <summary>The index engine closes itself, as LiteDB does after an I/O error; the next call reopens it.</summary>
    private void KillIndexEngine() => Assert.True(_index!.Database.TryWrite(database => database.Dispose()));

    /// <summary>
    /// A directory nothing can be moved into (EACCES, or EPERM for root, whom modes do not stop: the immutable
    /// attribute), until disposed.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static IDisposable RefuseWrites(string directory)
    {
        if (Environment.UserName != "root")
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            return new Undo(() => File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        }

        Chattr("+i", directory);
        return new Undo(() => Chattr("-i", directory));
    }

    private static void Chattr(string flag, string path)
    {
        using var process = System.Diagnostics.Process.Start("chattr", [flag, path]);
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }

    private sealed class Undo(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    [Fact]
    public void Dispose_CalledTwice_DoesNotThrow()
    {
        _cache.Dispose();
        _cache.Dispose();
        _cache = Open(LargeCap);
    }

    [Fact]
    public void VerifyFile_MatchingAndTamperedContent_ReturnsExpected()
    {
        var bytes = Bytes(1_000, 1);
        var digest = Digest.Compute(bytes);
        var path = _directory.Combine("verify");
        File.WriteAllBytes(path, bytes);

        Assert.True(BlobRepair.VerifyFile(digest, path, out var size, out var mediaType));
        Assert.Equal(1_000, size);
        Assert.Equal("application/octet-stream", mediaType);

        bytes[500] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.False(BlobRepair.VerifyFile(digest, path, out _, out _));
        Assert.False(BlobRepair.VerifyFile(digest, _directory.Combine("missing"), out _, out _));
    }

    [Fact]
    public void Readiness_HealthyCache_Empty()
    {
        var (problems, degraded) = _cache.Readiness();

        Assert.Empty(problems);
        Assert.Empty(degraded);
        Assert.False(_cache.IsStorageDegraded);
    }

    [Fact]
    public void Readiness_TempDirectoryGone_ReportsDegradedPassThroughNotUnready()
    {
        Directory.Delete(TempRoot, recursive: true);

        var (problems, degraded) = _cache.Readiness();

        Assert.Empty(problems);
        Assert.Contains("not writable, serving pass-through", Assert.Single(degraded), StringComparison.Ordinal);
    }

    /// <summary>An origin's 200 body, as upstream's would be: its length announced unless the content has none.</summary>
    private static OriginBody Body(HttpContent content, string mediaType, long? contentLength = null)
    {
        if (contentLength is not null)
        {
            content.Headers.ContentLength = contentLength;
        }

        return new OriginBody(content.ReadAsStream(), 0, content.Headers.ContentLength, mediaType, ProvesAccess: true, content);
    }

    private void AssertNothingKept(Digest digest, BlobFill fill)
    {
        Assert.Null(_cache.TryGet(digest));
        Assert.Null(_index!.Blobs.FindBlob(digest));
        Assert.False(File.Exists(fill.FinalPath));
        Assert.False(File.Exists(fill.TempPath));
        Assert.Empty(Directory.EnumerateFiles(TempRoot));
        Assert.Equal(0, _cache.InFlightCount);
        Assert.Equal(0, _cache.TotalBytes);
    }
}
