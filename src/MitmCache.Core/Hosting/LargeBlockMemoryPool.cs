using System.Buffers;
using Microsoft.AspNetCore.Connections.Features;

namespace MitmCache.Hosting;

/// <summary>
/// A memory pool that hands out 64 KiB blocks. Kestrel's TLS pipe sizes its reads and writes by the
/// pool's blocks; with the default 4 KiB blocks TLS throughput tops out near 370 MB/s on a 2-core
/// machine, with 64 KiB blocks it reaches about 850 MB/s (nginx: about 900 MB/s).
/// Set on a connection as an <see cref="IMemoryPoolFeature"/> before <c>UseHttps</c> runs.
/// Larger rents (a cache hit's 256 KiB response chunks) come from the same shared array pool rather
/// than a fresh array each time, hence <see cref="MaxBufferSize"/> above the block size.
/// </summary>
internal sealed class LargeBlockMemoryPool : MemoryPool<byte>, IMemoryPoolFeature
{
    public const int BlockSize = 64 * 1024;

    public static LargeBlockMemoryPool Instance { get; } = new();

    public override int MaxBufferSize => 1 << 20;

    MemoryPool<byte> IMemoryPoolFeature.MemoryPool => this;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1) =>
        new Block(ArrayPool<byte>.Shared.Rent(Math.Max(minBufferSize, BlockSize)));

    protected override void Dispose(bool disposing)
    {
    }

    private sealed class Block(byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            var array = Interlocked.Exchange(ref _array, null);
            if (array is not null)
            {
                ArrayPool<byte>.Shared.Return(array);
            }
        }
    }
}
