using System.Runtime.InteropServices;
using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;

namespace MitmCache.Core.Tests.Caching;

public sealed class PageCacheReadTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void TryRead_BytesJustWritten_CopiedAtOnceFromThePageCache_AndTheEndReadsZero()
    {
        var (path, bytes) = WriteFile(1 << 20);
        using var handle = File.OpenHandle(path);
        var buffer = new byte[256 * 1024];

        Assert.True(PageCacheRead.TryRead(handle, buffer, 1000, out var read), "preadv2 with RWF_NOWAIT refused bytes that were just written");
        Assert.Equal(buffer.Length, read);
        Assert.Equal(bytes.AsSpan(1000, read).ToArray(), buffer);

        Assert.True(PageCacheRead.TryRead(handle, buffer, bytes.Length - 10, out read));
        Assert.Equal(10, read);
        Assert.True(PageCacheRead.TryRead(handle, buffer, bytes.Length, out read));
        Assert.Equal(0, read);
    }

    [Fact]
    public async Task ReadAsync_BytesDroppedFromThePageCache_NotReadAtOnce_ButReadWholeTheSlowWay()
    {
        var (path, bytes) = WriteFile(1 << 20);
        using var handle = File.OpenHandle(path);
        Assert.Equal(0, FadviseDontNeed(handle.DangerousGetHandle().ToInt32(), 0, 0, 4)); // POSIX_FADV_DONTNEED: the clean pages go

        var buffer = new byte[bytes.Length];
        Assert.False(PageCacheRead.TryRead(handle, buffer, 0, out _), "a read that must wait for the disk was not refused");

        var total = 0;
        while (total < buffer.Length)
        {
            var read = await PageCacheRead.ReadAsync(handle, buffer.AsMemory(total), total, CancellationToken.None);
            Assert.True(read > 0);
            total += read;
        }

        Assert.Equal(bytes, buffer);
    }

    [Fact]
    public async Task ReadAsync_ClosedHandle_FailsAsRandomAccessWould()
    {
        var (path, _) = WriteFile(4096);
        var handle = File.OpenHandle(path);
        handle.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await PageCacheRead.ReadAsync(handle, new byte[16], 0, CancellationToken.None));
    }

    private (string Path, byte[] Bytes) WriteFile(int size)
    {
        var path = _directory.Combine("blob");
        var bytes = new byte[size];
        Random.Shared.NextBytes(bytes);
        using (var stream = new FileStream(path, FileMode.Create))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true); // written back, so the pages are clean and can be dropped
        }

        return (path, bytes);
    }

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int FadviseDontNeed(int fd, long offset, long length, int advice);
}
