using System.Text;
using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class BlobRepairTests : BlobCacheTestBase
{
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
}
