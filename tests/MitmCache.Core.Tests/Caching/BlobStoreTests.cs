using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class BlobStoreTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly BlobStore _store;

    public BlobStoreTests()
    {
        _store = new BlobStore(new DataLayout(_directory.Path));
        _store.CreateDirectories();
    }

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void CreateDirectories_CreatesBlobAndTempRoots()
    {
        Assert.True(Directory.Exists(_store.BlobRoot));
        Assert.True(Directory.Exists(_store.TempRoot));
        Assert.EndsWith(Path.DirectorySeparatorChar.ToString(), _store.BlobRoot, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_CreatesNothing_AndAStoreWithoutFoldersSweepsAndListsNothing()
    {
        using var empty = new TempDirectory();
        var store = new BlobStore(new DataLayout(empty.Path));

        Assert.Equal(0, store.SweepTemp());
        Assert.Empty(store.EnumerateBlobs());
        Assert.Empty(Directory.EnumerateFileSystemEntries(empty.Path));
    }

    [Fact]
    public void PathOf_Digest_TwoCharacterFanOutUnderBlobRoot()
    {
        var digest = Digest.Compute("hello"u8);

        Assert.Equal(Path.Combine(_store.BlobRoot, "sha256", digest.Hex[..2], digest.Hex), _store.PathOf(digest));
    }

    [Theory]
    [InlineData("../../../etc", "passwd")]
    [InlineData("sha256", "../../../x")]
    public void PathOf_UnvalidatedDigest_Throws(string algorithm, string hex)
    {
        Assert.Throws<InvalidOperationException>(() => _store.PathOf(new Digest(algorithm, hex)));
    }

    [Fact]
    public void NewTempPath_SameDigest_UniquePathsUnderTempRoot()
    {
        var digest = Digest.Compute("hello"u8);

        var first = _store.NewTempPath(digest);
        var second = _store.NewTempPath(digest);

        Assert.NotEqual(first, second);
        Assert.StartsWith(_store.TempRoot, first, StringComparison.Ordinal);
        Assert.EndsWith(".part", first, StringComparison.Ordinal);
    }

    [Fact]
    public void Commit_TempFile_MovedIntoPlaceOverwritingAnyOldCopy()
    {
        var digest = Digest.Compute("hello"u8);
        var old = _store.NewTempPath(digest);
        File.WriteAllText(old, "stale");
        _store.Commit(old, digest);
        var temp = _store.NewTempPath(digest);
        File.WriteAllText(temp, "hello");

        _store.Commit(temp, digest);

        Assert.False(File.Exists(temp));
        Assert.Equal("hello", File.ReadAllText(_store.PathOf(digest)));
    }

    [Fact]
    public void Delete_ExistingAndMissing_ReturnsTrue()
    {
        var digest = Digest.Compute("hello"u8);
        var temp = _store.NewTempPath(digest);
        File.WriteAllText(temp, "hello");
        _store.Commit(temp, digest);

        Assert.True(_store.Delete(digest));
        Assert.False(File.Exists(_store.PathOf(digest)));
        Assert.True(_store.Delete(digest));
    }

    [Fact]
    public void SweepTemp_LeftoverFiles_RemovedAndCounted()
    {
        File.WriteAllText(Path.Combine(_store.TempRoot, "a.part"), "a");
        File.WriteAllText(Path.Combine(_store.TempRoot, "b.part"), "b");

        Assert.Equal(2, _store.SweepTemp());
        Assert.Empty(Directory.EnumerateFileSystemEntries(_store.TempRoot));
    }

    [Fact]
    public void EnumerateBlobs_MixedFiles_OnlyWellPlacedDigests()
    {
        var good = Digest.Compute("good"u8);
        var misplaced = Digest.Compute("misplaced"u8);
        var temp = _store.NewTempPath(good);
        File.WriteAllText(temp, "good");
        _store.Commit(temp, good);
        var wrongFanOut = Path.Combine(_store.BlobRoot, "sha256", "zz", misplaced.Hex);
        Directory.CreateDirectory(Path.GetDirectoryName(wrongFanOut)!);
        File.WriteAllText(wrongFanOut, "misplaced");
        File.WriteAllText(Path.Combine(_store.BlobRoot, "sha256", "zz", "notes.txt"), "x");
        var unknownAlgorithm = Path.Combine(_store.BlobRoot, "md5", "ab", "ab" + new string('0', 30));
        Directory.CreateDirectory(Path.GetDirectoryName(unknownAlgorithm)!);
        File.WriteAllText(unknownAlgorithm, "x");

        var blobs = _store.EnumerateBlobs().ToList();

        var (digest, path) = Assert.Single(blobs);
        Assert.Equal(good, digest);
        Assert.Equal(_store.PathOf(good), path);
    }
}
