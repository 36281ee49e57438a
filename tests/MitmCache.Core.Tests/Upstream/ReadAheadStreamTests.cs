using System.IO.Pipelines;
using System.Security.Cryptography;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class ReadAheadStreamTests
{
    private static readonly byte[] s_body = RandomNumberGenerator.GetBytes(300_000);

    [Fact]
    public async Task ReadAsync_SmallReads_EachInnerReadTakesUpToTheBufferSize()
    {
        var inner = new CountingReads(s_body);
        var stream = new ReadAheadStream(inner);
        var received = new MemoryStream();
        var piece = new byte[16 * 1024]; // what SslStream asks for: one TLS record

        int read;
        while ((read = await stream.ReadAsync(piece)) > 0)
        {
            received.Write(piece, 0, read);
        }

        Assert.Equal(s_body, received.ToArray());
        Assert.Equal(4, inner.Reads); // 128 + 128 + 37 KiB, then the end; 20 without the buffer
    }

    [Fact]
    public void Read_Synchronous_SameBytes()
    {
        var stream = new ReadAheadStream(new MemoryStream(s_body));
        var received = new MemoryStream();
        var piece = new byte[5_000];

        int read;
        while ((read = stream.Read(piece, 0, piece.Length)) > 0)
        {
            received.Write(piece, 0, read);
        }

        Assert.Equal(s_body, received.ToArray());
    }

    [Fact]
    public async Task ReadAsync_ZeroBytes_WaitsForDataAsTheSocketWould()
    {
        var source = new Pipe();
        var stream = new ReadAheadStream(source.Reader.AsStream());

        var waiting = stream.ReadAsync(Memory<byte>.Empty); // how an idle pooled connection waits: not an end
        Assert.False(waiting.IsCompleted);
        await source.Writer.WriteAsync(s_body.AsMemory(0, 1_000));
        await waiting.AsTask().WaitAsync(TimeSpan.FromSeconds(30));

        var piece = new byte[16 * 1024];
        Assert.Equal(1_000, await stream.ReadAsync(piece));
    }

    [Fact]
    public async Task WriteAsync_GoesStraightThrough()
    {
        var inner = new MemoryStream();
        var stream = new ReadAheadStream(inner);

        await stream.WriteAsync(s_body.AsMemory(0, 1_000));

        Assert.Equal(s_body[..1_000], inner.ToArray());
    }

    private sealed class CountingReads(byte[] bytes) : MemoryStream(bytes)
    {
        public int Reads { get; private set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Reads++;
            return base.ReadAsync(buffer, cancellationToken);
        }
    }
}
