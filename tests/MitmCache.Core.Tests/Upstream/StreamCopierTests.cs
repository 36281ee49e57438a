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
