using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;

namespace MitmCache.Core.Tests.Caching;

public sealed class WritebackTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Start_WrittenRangeOfARegularFile_KernelTakesItAndTheBytesStay()
    {
        var path = Path.Combine(_directory.Path, "fill");
        var bytes = new byte[3 << 20];
        Random.Shared.NextBytes(bytes);
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.Write(handle, bytes, 0);

            Assert.True(Writeback.Start(handle, 0, bytes.Length), "sync_file_range was refused on a regular file");
            Assert.True(Writeback.Start(handle, 1 << 20, 1 << 20));
            Assert.False(Writeback.Start(handle, 0, 0), "an empty range asks nothing");
        }

        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void Start_RangeStartingBeforeTheFile_RefusedWithoutThrowing()
    {
        using var handle = File.OpenHandle(Path.Combine(_directory.Path, "fill"), FileMode.CreateNew, FileAccess.Write);

        Assert.False(Writeback.Start(handle, -1, 10)); // EINVAL, and later calls still go to the kernel
        Assert.True(Writeback.Start(handle, 0, 10));
    }
}
