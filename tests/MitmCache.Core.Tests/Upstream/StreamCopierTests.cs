using System.IO.Pipelines;
using System.Security.Cryptography;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class StreamCopierTests
{
    private static readonly byte[] s_body = RandomNumberGenerator.GetBytes(200_000);

    [Fact]
    public async Task CopyAsync_ToHashingSink_HashesEveryByteAndReportsProgress()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long reported = 0;

        var copy = await StreamCopier.CopyAsync(new MemoryStream(s_body), new HashingSink(hash), CancellationToken.None, n => reported += n);

        Assert.Equal(new CopyResult(s_body.Length, CopyFailure.None), copy);
        Assert.Equal(s_body.Length, reported);
        Assert.Equal(SHA256.HashData(s_body), hash.GetHashAndReset());
    }

    [Fact]
    public void Copy_Synchronous_SameResultAsTheAsyncLoop()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        var copy = StreamCopier.Copy(new MemoryStream(s_body), new HashingSink(hash));

        Assert.Equal(new CopyResult(s_body.Length, CopyFailure.None), copy);
        Assert.Equal(SHA256.HashData(s_body), hash.GetHashAndReset());
    }

    [Fact]
    public void Copy_SourceFails_ReadFailureWithTheBytesBefore()
    {
        var copy = StreamCopier.Copy(new FailingAtEnd(s_body), new MemoryStream());

        Assert.Equal(CopyFailure.Read, copy.Failure);
        Assert.Equal(s_body.Length, copy.Bytes);
        Assert.IsType<IOException>(copy.Error);
    }

    [Fact]
    public void Copy_DestinationFails_WriteFailure()
    {
        var gone = new MemoryStream();
        gone.Dispose();

        var copy = StreamCopier.Copy(new MemoryStream(s_body), gone);

        Assert.Equal(CopyFailure.Write, copy.Failure);
        Assert.Equal(0, copy.Bytes);
    }

    [Fact]
    public async Task CopyAsync_SourceSilentPastTheStallTimeout_ReadFailureWithTimeout()
    {
        var source = new Pipe();
        await source.Writer.WriteAsync(s_body.AsMemory(0, 1_000)); // then nothing, and the pipe stays open

        var copy = await StreamCopier.CopyAsync(source.Reader.AsStream(), Stream.Null, CancellationToken.None, stallTimeout: TimeSpan.FromMilliseconds(200))
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(CopyFailure.Read, copy.Failure);
        Assert.Equal(1_000, copy.Bytes);
        Assert.IsType<TimeoutException>(copy.Error);
    }

    [Fact]
    public async Task CopyAsync_CanceledWhileTheSourceIsSilent_CanceledNotAStall()
    {
        var source = new Pipe();
        using var cancellation = new CancellationTokenSource();

        var copying = StreamCopier.CopyAsync(source.Reader.AsStream(), Stream.Null, cancellation.Token, stallTimeout: TimeSpan.FromMinutes(5));
        cancellation.Cancel();
        var copy = await copying.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(CopyFailure.Canceled, copy.Failure);
    }

    [Fact]
    public async Task CopyAsync_SourceHandsOutSmallPiecesAtOnce_GatheredIntoOneWrite()
    {
        var destination = new CountingWrites();

        var copy = await StreamCopier.CopyAsync(new SmallReads(s_body, 16 * 1024), destination, CancellationToken.None);

        Assert.Equal(new CopyResult(s_body.Length, CopyFailure.None), copy);
        Assert.Equal(s_body, destination.ToArray());
        Assert.Equal(1, destination.Writes); // 13 reads of at most 16 KiB, all there at once: one write
    }

    [Fact]
    public async Task CopyAsync_NextReadWouldWait_WritesWhatItHoldsFirst()
    {
        var source = new Pipe();
        var destination = new CountingWrites();
        var copying = StreamCopier.CopyAsync(source.Reader.AsStream(), destination, CancellationToken.None);

        await source.Writer.WriteAsync(s_body.AsMemory(0, 1_000));
        await destination.Wrote(1_000).WaitAsync(TimeSpan.FromSeconds(30)); // while the copy's next read waits
        await source.Writer.CompleteAsync();

        Assert.Equal(new CopyResult(1_000, CopyFailure.None), await copying.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    /// <summary>Counts the writes it is given and says when a number of bytes has arrived.</summary>
    private sealed class CountingWrites : MemoryStream
    {
        private readonly TaskCompletionSource _grew = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _awaited = long.MaxValue;

        public int Writes { get; private set; }

        public Task Wrote(long bytes)
        {
            _awaited = bytes;
            if (Length >= bytes)
            {
                _grew.TrySetResult();
            }

            return _grew.Task;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Writes++;
            base.Write(buffer);
            if (Length >= _awaited)
            {
                _grew.TrySetResult();
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Its bytes, at most <c>piece</c> at a time, each read complete at once (as a TLS stream with records buffered).</summary>
    private sealed class SmallReads(byte[] bytes, int piece) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(piece, buffer.Length)], cancellationToken);
    }

    /// <summary>Its bytes, then an I/O error where the end would be.</summary>
    private sealed class FailingAtEnd(byte[] bytes) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = base.Read(buffer, offset, count);
            return read > 0 ? read : throw new IOException("the disk failed");
        }
    }
}
