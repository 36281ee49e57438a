using System.Security.Cryptography;

namespace MitmCache.Registry;

/// <summary>
/// A content digest (<c>algorithm:hex</c>) as used by the OCI distribution spec.
/// Only <see cref="TryParse"/> and <see cref="Compute"/> produce validated values; the positional
/// constructor exists because this is a record, so <see cref="RelativePath"/> re-checks before it
/// lets a digest become part of a file path.
/// </summary>
/// <remarks>
/// Only sha256 and sha512 with lowercase hex are accepted (the two algorithms registered by
/// the OCI image spec). The grammar is deliberately narrower than the spec's general
/// <c>algorithm ":" encoded</c> form: anything that could reach the file system must be
/// plain <c>[a-z0-9]</c>.
/// </remarks>
internal readonly record struct Digest(string Algorithm, string Hex)
{
    public const string Sha256 = "sha256";
    public const string Sha512 = "sha512";

    private const int Sha256HexLength = 64;
    private const int Sha512HexLength = 128;

    /// <summary>
    /// The digest as a relative path with a two-character fan-out, e.g. <c>sha256/ab/ab12...</c>.
    /// Contains only <c>[a-z0-9/]</c>. Callers join it under their storage root.
    /// </summary>
    /// <exception cref="InvalidOperationException">The digest was not produced by TryParse/Compute.</exception>
    public string RelativePath
    {
        get
        {
            // A record's constructor and 'with' bypass TryParse: never let an unchecked string become a path.
            if (!IsWellFormed(Algorithm, Hex))
            {
                throw new InvalidOperationException("Digest was not validated; use Digest.TryParse or Digest.Compute.");
            }

            return $"{Algorithm}/{Hex.AsSpan(0, 2)}/{Hex}";
        }
    }

    /// <summary>Parses <c>sha256:&lt;64 lowercase hex&gt;</c> or <c>sha512:&lt;128 lowercase hex&gt;</c>; rejects everything else.</summary>
    public static bool TryParse(ReadOnlySpan<char> s, out Digest digest)
    {
        digest = default;
        var colon = s.IndexOf(':');
        if (colon < 0)
        {
            return false;
        }

        var algorithmSpan = s[..colon];
        var hexSpan = s[(colon + 1)..];
        string algorithm;
        if (algorithmSpan.SequenceEqual(Sha256))
        {
            algorithm = Sha256;
        }
        else if (algorithmSpan.SequenceEqual(Sha512))
        {
            algorithm = Sha512;
        }
        else
        {
            return false;
        }

        if (hexSpan.Length != HexLength(algorithm) || !IsLowerHex(hexSpan))
        {
            return false;
        }

        digest = new Digest(algorithm, hexSpan.ToString());
        return true;
    }

    /// <summary>Computes the digest of <paramref name="data"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="algorithm"/> is not sha256 or sha512.</exception>
    public static Digest Compute(ReadOnlySpan<byte> data, string algorithm = Sha256)
    {
        return algorithm switch
        {
            Sha256 => new Digest(Sha256, Convert.ToHexStringLower(SHA256.HashData(data))),
            Sha512 => new Digest(Sha512, Convert.ToHexStringLower(SHA512.HashData(data))),
            _ => throw new ArgumentException($"Unsupported digest algorithm '{algorithm}'.", nameof(algorithm)),
        };
    }

    /// <summary>Creates an incremental hash for this digest's algorithm, for verifying streamed content.</summary>
    public IncrementalHash CreateHash()
    {
        return Algorithm switch
        {
            Sha256 => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
            Sha512 => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
            _ => throw new InvalidOperationException($"Unsupported digest algorithm '{Algorithm}'."),
        };
    }

    /// <summary>True when <paramref name="hashBytes"/> (a finished hash) equals this digest. Constant-time.</summary>
    public bool Matches(ReadOnlySpan<byte> hashBytes)
    {
        if (!IsWellFormed(Algorithm, Hex) || hashBytes.Length != Hex.Length / 2)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[Sha512HexLength / 2];
        expected = expected[..hashBytes.Length];
        Convert.FromHexString(Hex, expected, out _, out _);
        return CryptographicOperations.FixedTimeEquals(expected, hashBytes);
    }

    public override string ToString() => $"{Algorithm}:{Hex}";

    private static int HexLength(string algorithm) => algorithm == Sha256 ? Sha256HexLength : Sha512HexLength;

    private static bool IsWellFormed(string? algorithm, string? hex)
    {
        return algorithm is Sha256 or Sha512
            && hex is not null
            && hex.Length == HexLength(algorithm)
            && IsLowerHex(hex);
    }

    private static bool IsLowerHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return true;
    }
}
