using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class BlobCacheTests : BlobCacheTestBase
{
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
    public async Task OpenAsync_HitWhoseFileWentAfterItWasFound_FilledAgainFromTheOrigin()
    {
        var bytes = Bytes(5_000, 7);
        var digest = Store(5_000, 7);
        var hit = _cache.TryGet(digest)!;
        File.Delete(hit.Path); // between the endpoint's look-up and the read

        var reader = new FillReader("registry.test/library/app", "anonymous", KnownGood: true, (_, _) => Task.FromResult(true));
        var origin = new WholeOrigin(bytes);
        using (var source = await _cache.OpenAsync(new BlobRead(digest, origin, reader, Hit: hit), CancellationToken.None))
        {
            Assert.Equal(BlobSourceKind.Filling, source.Kind);
            var output = new MemoryStream();
            var writer = System.IO.Pipelines.PipeWriter.Create(output);
            var (outcome, sent) = await source.CopyToAsync(writer, 0, long.MaxValue, verify: false, CancellationToken.None);
            await writer.CompleteAsync();

            Assert.Equal(ReadOutcome.Completed, outcome);
            Assert.Equal(bytes, output.ToArray());
        }

        Assert.Equal(1, origin.Fetches);
        await _cache.FillsEnded();
        Assert.Equal(bytes, File.ReadAllBytes(_cache.TryGet(digest)!.Path));
    }

    [Fact]
    public async Task OpenAsync_Hit_ServedFromTheFileWithoutAskingTheOrigin()
    {
        var digest = Store(5_000, 8);
        var reader = new FillReader("registry.test/library/app", "anonymous", KnownGood: true, (_, _) => Task.FromResult(true));
        var origin = new WholeOrigin(Bytes(5_000, 8));

        using var source = await _cache.OpenAsync(new BlobRead(digest, origin, reader, Hit: _cache.TryGet(digest)), CancellationToken.None);

        Assert.Equal(BlobSourceKind.Committed, source.Kind);
        Assert.Equal(0, origin.Fetches);
    }

    /// <summary>An origin that answers with the whole blob.</summary>
    private sealed class WholeOrigin(byte[] blob) : IBlobOrigin
    {
        public int Fetches { get; private set; }

        public Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
        {
            Fetches++;
            return Task.FromResult<OriginAnswer>(new OriginBody(new MemoryStream(blob), 0, blob.Length, "application/octet-stream", ProvesAccess: true));
        }
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
    public void Dispose_CalledTwice_DoesNotThrow()
    {
        _cache.Dispose();
        _cache.Dispose();
        _cache = Open(LargeCap);
    }
}
