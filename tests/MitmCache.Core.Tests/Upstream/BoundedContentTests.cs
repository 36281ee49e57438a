using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class BoundedContentTests
{
    /// <summary>A body that never ends, counting what was read from it.</summary>
    private sealed class EndlessStream : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            buffer.AsSpan(offset, count).Fill((byte)'{');
            BytesRead += count;
            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task ReadAsync_EndlessBodyWithoutLength_StopsJustPastTheCap()
    {
        var endless = new EndlessStream();
        using var content = new StreamContent(endless);

        Assert.Null(await BoundedContent.ReadAsync(content, 1 << 20, CancellationToken.None));
        Assert.InRange(endless.BytesRead, (1 << 20) + 1, (1 << 20) + (128 << 10));
    }

    [Fact]
    public async Task ReadAsync_AnnouncedLengthOverTheCap_NothingRead()
    {
        var endless = new EndlessStream();
        using var content = new StreamContent(endless);
        content.Headers.ContentLength = (1 << 20) + 1;

        Assert.Null(await BoundedContent.ReadAsync(content, 1 << 20, CancellationToken.None));
        Assert.Equal(0, endless.BytesRead);
    }

    [Fact]
    public async Task ReadAsync_BodyLongerThanItsAnnouncedLength_StillCapped()
    {
        var endless = new EndlessStream();
        using var content = new StreamContent(endless);
        content.Headers.ContentLength = 10; // lies

        Assert.Null(await BoundedContent.ReadAsync(content, 1024, CancellationToken.None));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1024)]
    public async Task ReadAsync_BodyUpToTheCap_Whole(int size)
    {
        var bytes = new byte[size];
        Random.Shared.NextBytes(bytes);
        using var content = new StreamContent(new MemoryStream(bytes)); // no length announced

        Assert.Equal(bytes, await BoundedContent.ReadAsync(content, 1024, CancellationToken.None));
    }

    [Fact]
    public void Describe_Limits_InMibOrKib()
    {
        Assert.Equal("4 MiB", BoundedContent.Describe(BoundedContent.MaxManifestBytes));
        Assert.Equal("1 MiB", BoundedContent.Describe(BoundedContent.MaxTokenBytes));
        Assert.Equal("64 KiB", BoundedContent.Describe(64 << 10));
    }
}
