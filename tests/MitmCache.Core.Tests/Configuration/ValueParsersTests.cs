using System.Net;
using MitmCache.Configuration;

namespace MitmCache.Core.Tests.Configuration;

public class ValueParsersTests
{
    [Theory]
    [InlineData("50GiB", 50L << 30)]
    [InlineData("500MB", 500_000_000L)]
    [InlineData("500MiB", 500L << 20)]
    [InlineData("1.5G", 1_610_612_736L)]
    [InlineData("2K", 2048L)]
    [InlineData("10KB", 10_000L)]
    [InlineData("1TiB", 1L << 40)]
    [InlineData("7B", 7L)]
    [InlineData("1073741824", 1L << 30)]
    [InlineData("0", 0L)]
    [InlineData("  3 MiB  ", 3L << 20)]
    public void TryParseSize_ValidSize_ReturnsBytes(string text, long expected)
    {
        Assert.True(ValueParsers.TryParseSize(text, out var bytes));
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("junk")]
    [InlineData("GiB")]
    [InlineData("-1GiB")]
    [InlineData("50gib")] // units are case-sensitive
    [InlineData("50 XB")]
    [InlineData("1,5G")]
    [InlineData("1e3")]
    [InlineData("1.2.3M")]
    [InlineData("9999999999T")] // more than long.MaxValue bytes
    public void TryParseSize_Junk_ReturnsFalse(string? text)
    {
        Assert.False(ValueParsers.TryParseSize(text, out _));
    }

    [Fact]
    public void TryParseSize_DecimalOverflow_ReturnsFalse()
    {
        Assert.False(ValueParsers.TryParseSize("10000000000000000000000000000T", out _));
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("5m", 300_000)]
    [InlineData("2h", 7_200_000)]
    [InlineData("7d", 604_800_000)]
    [InlineData("250ms", 250)]
    [InlineData("1.5s", 1_500)]
    [InlineData("0s", 0)]
    [InlineData(" 10s ", 10_000)]
    [InlineData("00:01:30", 90_000)] // a TimeSpan literal
    public void TryParseDuration_ValidDuration_ReturnsTimeSpan(string text, long milliseconds)
    {
        Assert.True(ValueParsers.TryParseDuration(text, out var duration));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), duration);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData("junk")]
    [InlineData("s")]
    [InlineData("-5s")]
    [InlineData("5 m")]
    [InlineData("5min")]
    [InlineData("5S")]
    [InlineData("1e3s")]
    [InlineData("-00:00:05")]
    public void TryParseDuration_Junk_ReturnsFalse(string? text)
    {
        Assert.False(ValueParsers.TryParseDuration(text, out _));
    }

    [Fact]
    public void TryParseDuration_Overflow_ReturnsFalse()
    {
        Assert.False(ValueParsers.TryParseDuration("99999999999999999999d", out _));
    }

    [Theory]
    [InlineData("127.0.0.1:3128", "127.0.0.1", 3128)]
    [InlineData("0.0.0.0:8080", "0.0.0.0", 8080)]
    [InlineData("[::1]:3128", "::1", 3128)]
    [InlineData("[::]:3128", "::", 3128)]
    [InlineData(":3128", "::", 3128)] // all interfaces
    [InlineData("127.0.0.1:0", "127.0.0.1", 0)] // an ephemeral port, as the functional tests use
    public void TryParseEndpoint_Valid_ReturnsEndpoint(string text, string address, int port)
    {
        Assert.True(ValueParsers.TryParseEndpoint(text, out var endpoint));
        Assert.Equal(IPAddress.Parse(address), endpoint.Address);
        Assert.Equal(port, endpoint.Port);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("junk")]
    [InlineData("3128")]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    [InlineData("::1:3128")] // IPv6 needs brackets to carry a port
    [InlineData("localhost:3128")]
    [InlineData("127.0.0.1:65536")]
    [InlineData(":65536")]
    [InlineData(":-1")]
    [InlineData(":abc")]
    [InlineData("127.0.0.1:abc")]
    public void TryParseEndpoint_Junk_ReturnsFalse(string? text)
    {
        Assert.False(ValueParsers.TryParseEndpoint(text, out _));
    }

    [Fact]
    public void TryParseEndpoint_BracketedIpv6WithoutPort_ReturnsFalse()
    {
        Assert.False(ValueParsers.TryParseEndpoint("[::1]", out _));
    }

    [Theory]
    [InlineData("registry.test:5000", "registry.test", 5000)]
    [InlineData("[::1]:443", "::1", 443)]
    [InlineData("10.0.0.1:65535", "10.0.0.1", 65535)]
    public void TrySplitHostPort_Valid_ReturnsHostAndPort(string text, string host, int port)
    {
        Assert.True(ValueParsers.TrySplitHostPort(text, out var actualHost, out var actualPort));
        Assert.Equal(host, actualHost);
        Assert.Equal(port, actualPort);
    }

    [Theory]
    [InlineData("registry.test")]
    [InlineData(":443")]
    [InlineData("registry.test:")]
    [InlineData("registry.test:0")]
    [InlineData("registry.test:65536")]
    [InlineData("registry.test:abc")]
    [InlineData("::1:443")]
    [InlineData("[::1:443")]
    [InlineData("[]:443")]
    public void TrySplitHostPort_Invalid_ReturnsFalse(string text)
    {
        Assert.False(ValueParsers.TrySplitHostPort(text, out _, out _));
    }
}
