using System.Security.Cryptography;
using System.Text;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class DigestTests
{
    private const string EmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    private const string EmptySha512 =
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    public static TheoryData<string> ValidDigests => new()
    {
        "sha256:" + EmptySha256,
        "sha256:" + new string('0', 64),
        "sha256:" + new string('f', 64),
        "sha512:" + EmptySha512,
    };

    public static TheoryData<string> InvalidDigests => new()
    {
        "",
        ":",
        "sha256",
        "sha256:",
        "sha256:" + EmptySha256.ToUpperInvariant(),
        "sha256:" + EmptySha256[..63] + "A",
        "SHA256:" + EmptySha256,
        "Sha256:" + EmptySha256,
        "sha384:" + new string('a', 96),
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:" + EmptySha256[..63],
        "sha256:" + EmptySha256 + "0",
        "sha256:" + EmptySha256 + "\n",
        "sha256:" + EmptySha256 + "\0",
        " sha256:" + EmptySha256,
        "sha256: " + EmptySha256[..63],
        "sha256::" + EmptySha256[..63],
        "sha256:" + EmptySha256[..62] + "g0",
        "sha256:" + EmptySha256[..63] + "é",
        "sha256:" + EmptySha256[..63] + "\u0660",
        "sha256:" + EmptySha256[..32] + "/" + EmptySha256[33..],
        "sha256:../..",
        "sha256:../" + EmptySha256[..61],
        "sha256/" + EmptySha256,
        "sha512:" + EmptySha256,
        "sha512:" + EmptySha512[..127],
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    };

    [Theory]
    [MemberData(nameof(ValidDigests))]
    public void TryParse_ValidDigest_ReturnsTrueAndRoundTrips(string text)
    {
        Assert.True(Digest.TryParse(text, out var digest));
        Assert.Equal(text, digest.ToString());
        Assert.Equal(text[..6], digest.Algorithm);
        Assert.Equal(text[7..], digest.Hex);
    }

    [Theory]
    [MemberData(nameof(InvalidDigests))]
    public void TryParse_InvalidDigest_ReturnsFalse(string text)
    {
        Assert.False(Digest.TryParse(text, out var digest));
        Assert.Equal(default, digest);
    }

    [Fact]
    public void RelativePath_ValidDigest_FansOutOnFirstTwoHexChars()
    {
        Assert.True(Digest.TryParse("sha256:" + EmptySha256, out var digest));

        Assert.Equal("sha256/e3/" + EmptySha256, digest.RelativePath);
        Assert.Matches("^[a-z0-9/]+$", digest.RelativePath);
    }

    [Theory]
    [InlineData("sha256", "../../etc/passwd")]
    [InlineData("../x", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")]
    public void RelativePath_UnvalidatedDigest_Throws(string algorithm, string hex)
    {
        var digest = new Digest(algorithm, hex);

        Assert.Throws<InvalidOperationException>(() => digest.RelativePath);
    }

    [Fact]
    public void RelativePath_DefaultDigest_Throws()
    {
        Assert.Throws<InvalidOperationException>(() => default(Digest).RelativePath);
    }

    [Theory]
    [InlineData("", "sha256", EmptySha256)]
    [InlineData("", "sha512", EmptySha512)]
    [InlineData("abc", "sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
    public void Compute_KnownInput_ReturnsKnownDigest(string input, string algorithm, string expectedHex)
    {
        var digest = Digest.Compute(Encoding.ASCII.GetBytes(input), algorithm);

        Assert.Equal(new Digest(algorithm, expectedHex), digest);
    }

    [Fact]
    public void Compute_DefaultAlgorithm_IsSha256()
    {
        Assert.Equal(Digest.Sha256, Digest.Compute([]).Algorithm);
    }

    [Theory]
    [InlineData("sha384")]
    [InlineData("SHA256")]
    [InlineData("")]
    public void Compute_UnsupportedAlgorithm_Throws(string algorithm)
    {
        Assert.Throws<ArgumentException>(() => Digest.Compute([], algorithm));
    }

    [Theory]
    [InlineData("sha256")]
    [InlineData("sha512")]
    public void CreateHash_StreamedContent_MatchesComputedDigest(string algorithm)
    {
        var data = Encoding.UTF8.GetBytes("hello, registry");
        var digest = Digest.Compute(data, algorithm);

        using var hash = digest.CreateHash();
        hash.AppendData(data.AsSpan(0, 5));
        hash.AppendData(data.AsSpan(5));

        Assert.True(digest.Matches(hash.GetHashAndReset()));
    }

    [Fact]
    public void Matches_DifferentContent_ReturnsFalse()
    {
        var digest = Digest.Compute("a"u8);

        Assert.False(digest.Matches(SHA256.HashData("b"u8)));
    }

    [Fact]
    public void Matches_WrongLength_ReturnsFalse()
    {
        var digest = Digest.Compute("a"u8);

        Assert.False(digest.Matches(SHA512.HashData("a"u8)));
        Assert.False(digest.Matches([]));
    }

    [Fact]
    public void Matches_UnvalidatedDigest_ReturnsFalse()
    {
        var digest = new Digest("sha256", new string('z', 64));

        Assert.False(digest.Matches(new byte[32]));
    }
}
