using System.IO.Pipelines;
using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class FillPumpTests : BlobCacheTestBase
{
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
    public async Task StartFill_Verified_AReaderGetsTheLastByteWhileTheCommitRuns_ANewRequestWaitsForIt()
    {
        var body = Bytes(300_000, 1);
        var digest = Digest.Compute(body);
        var (fill, _) = _cache.JoinOrStart(digest);
        var pipe = new Pipe();
        using var commitEntered = new SemaphoreSlim(0);
        using var commitMayEnd = new SemaphoreSlim(0);
        _cache.StartFill(fill, Body(new StreamContent(pipe.Reader.AsStream()), "application/octet-stream", body.Length), committed: _ =>
        {
            commitEntered.Release();
            commitMayEnd.Wait(s_timeout); // a slow disk's fsync, index and hooks
        });
        using var file = File.OpenHandle(fill.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var output = new RecordingStream();
        var read = BlobReader.CopyAsync(file, 0, body.Length, output, fill, CancellationToken.None);

        await pipe.Writer.WriteAsync(body);
        await pipe.Writer.CompleteAsync();
        Assert.True(await commitEntered.WaitAsync(s_timeout));
        var (outcome, bytes) = await read.WaitAsync(s_timeout);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(body, output.ToArray());
        Assert.False(fill.Completion.IsCompleted); // the client did not wait for the commit
        var next = _cache.WaitForCommitAsync(digest, CancellationToken.None); // a request that comes now
        Assert.False(next.IsCompleted);
        commitMayEnd.Release();
        await next.WaitAsync(s_timeout);
        Assert.NotNull(_cache.TryGet(digest)); // it finds the blob committed, as any later request does
        Assert.Equal(FillOutcome.Committed, await fill.Completion.WaitAsync(s_timeout));
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
