using MitmCache.Caching;

namespace MitmCache.Core.Tests.Caching;

public class ByteRangeTests
{
    [Theory]
    [InlineData("bytes=0-99", 0, 100)]
    [InlineData("bytes=100-", 100, 900)]
    [InlineData("bytes=-50", 950, 50)]
    [InlineData("bytes=-1000", 0, 1000)]
    [InlineData("bytes=-5000", 0, 1000)] // a suffix longer than the body is the whole body
    [InlineData("bytes=900-1999", 900, 100)] // the end past the end is clamped
    [InlineData("bytes=0-0", 0, 1)]
    [InlineData("bytes=999-999", 999, 1)]
    [InlineData("bytes=999-", 999, 1)]
    [InlineData("bytes=0-9223372036854775807", 0, 1000)]
    [InlineData("Bytes=10-19", 10, 10)]
    [InlineData("bytes= 10 - 19 ", 10, 10)]
    public void Resolve_SatisfiableRange_ReturnsPartial(string header, long start, long length)
    {
        Assert.Equal(new ByteRange(RangeKind.Partial, start, length), ByteRange.Resolve(header, 1000));
    }

    [Theory]
    [InlineData("bytes=1000-")]
    [InlineData("bytes=1000-1000")]
    [InlineData("bytes=5000-5999")]
    [InlineData("bytes=-0")]
    public void Resolve_StartPastEndOrEmptySuffix_ReturnsUnsatisfiable(string header)
    {
        Assert.Equal(RangeKind.Unsatisfiable, ByteRange.Resolve(header, 1000).Kind);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("bytes=0-9,20-29")] // multiple ranges: the whole body, as RFC 9110 allows
    [InlineData("bytes=0-9, 20-")]
    [InlineData("bytes=junk")]
    [InlineData("bytes=a-b")]
    [InlineData("bytes=")]
    [InlineData("bytes=-")]
    [InlineData("bytes=--5")]
    [InlineData("bytes=+1-5")]
    [InlineData("bytes=0x10-20")]
    [InlineData("bytes=20-10")] // last before first: invalid, ignored
    [InlineData("bytes=99999999999999999999-")]
    [InlineData("items=0-9")]
    [InlineData("0-9")]
    public void Resolve_MissingMultiOrJunk_ReturnsFull(string? header)
    {
        Assert.Equal(new ByteRange(RangeKind.Full, 0, 1000), ByteRange.Resolve(header, 1000));
    }

    [Theory]
    [InlineData("bytes=0-")]
    [InlineData("bytes=0-0")]
    [InlineData("bytes=-10")]
    public void Resolve_EmptyBody_ReturnsUnsatisfiable(string header)
    {
        Assert.Equal(RangeKind.Unsatisfiable, ByteRange.Resolve(header, 0).Kind);
    }

    [Fact]
    public void Resolve_EmptyBodyWithoutRange_ReturnsFullOfZero()
    {
        Assert.Equal(new ByteRange(RangeKind.Full, 0, 0), ByteRange.Resolve(null, 0));
    }
}
