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
        var copy = StreamCopier.Copy(new FailingStream(failAfter: StreamCopier.BufferSize), new MemoryStream());

        Assert.Equal(CopyFailure.Read, copy.Failure);
        Assert.Equal(StreamCopier.BufferSize, copy.Bytes);
        Assert.IsType<IOException>(copy.Error);
    }

    [Fact]
    public void Copy_DestinationFails_WriteFailure()
    {
        var copy = StreamCopier.Copy(new MemoryStream(s_body), new FailingStream(failAfter: 0));

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

    /// <summary>Reads zeros or takes writes, then throws <see cref="IOException"/> once <c>failAfter</c> bytes have passed.</summary>
    private sealed class FailingStream(int failAfter) : Stream
    {
        private long _passed;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, failAfter - _passed);
            if (n <= 0)
            {
                throw new IOException("the disk failed");
            }

            Array.Clear(buffer, offset, n);
            _passed += n;
            return n;
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            if (_passed + count > failAfter)
            {
                throw new IOException("the peer went away");
            }

            _passed += count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
