using System.Globalization;
using System.Runtime.InteropServices;

namespace MitmCache.Configuration;

/// <summary>
/// Checks, before anything is read or written, that the data directory belongs to the user mitmcache runs
/// as. A service user on root's directory cannot see the CA (and must not take that for "no CA"); root on
/// the service user's directory would leave root-owned files that stop the service later.
/// </summary>
public static class DataDirectoryAccess
{
    private const int AtCurrentDirectory = -100;
    private const uint StatxUid = 0x8;
    private const int UidOffset = 20; // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid (the same on every Linux ABI)
    private const int ReadWriteExecute = 7;
    private const int ReadWrite = 6;

    /// <summary>Adds one message per problem; none on a directory that does not exist yet (it will be created as ours).</summary>
    public static void Check(DataLayout layout, List<string> errors)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            var me = geteuid();
            if (CheckEntry(layout.Root, me, errors) is not true)
            {
                return; // missing (nothing inside to check) or wrong: what is inside is moot
            }

            foreach (var path in layout.OwnedEntries.Skip(1))
            {
                CheckEntry(path, me, errors);
            }
        }
        catch (EntryPointNotFoundException)
        {
            // A C library without statx (glibc before 2.28, 2018): no check, as on other systems.
        }
    }

    /// <summary>True when the entry is usable, false when a problem was added, null when it does not exist.</summary>
    private static bool? CheckEntry(string path, uint me, List<string> errors)
    {
        var buffer = new byte[256];
        if (statx(AtCurrentDirectory, path.TrimEnd('/'), 0, StatxUid, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is 2 or 20) // ENOENT, ENOTDIR
            {
                return null;
            }

            errors.Add($"{path}: cannot be looked at ({Marshal.GetPInvokeErrorMessage(errno)}) by {UserName(me)}; run mitmcache as the user that owns the data directory");
            return false;
        }

        var owner = BitConverter.ToUInt32(buffer, UidOffset);
        var accessible = access(path, Directory.Exists(path) ? ReadWriteExecute : ReadWrite) == 0;
        if (owner != me && me == 0)
        {
            errors.Add($"{path} is owned by {UserName(owner)}, but mitmcache runs as root: what it writes there would belong to root and stop " +
                $"the service later. Run it as that user (runuser -u {NameOf(owner) ?? owner.ToString(CultureInfo.InvariantCulture)} -- mitmcache ...), or chown the data directory to root to mean it");
            return false;
        }

        if (!accessible)
        {
            errors.Add(owner == me
                ? $"{path} is not readable and writable by its owner ({UserName(me)}); chmod u+rw it"
                : $"{path} is owned by {UserName(owner)}, and mitmcache runs as {UserName(me)}, which cannot read and write it. " +
                  $"Run mitmcache as that user, or chown -R {me} the data directory");
            return false;
        }

        return true;
    }

    private static string UserName(uint uid) =>
        NameOf(uid) is { } name ? $"uid {uid} ({name})" : $"uid {uid}";

    /// <summary>The account's name from /etc/passwd, for messages; null when not listed.</summary>
    private static string? NameOf(uint uid)
    {
        try
        {
            var id = uid.ToString(CultureInfo.InvariantCulture);
            return File.ReadLines("/etc/passwd").Select(line => line.Split(':')).FirstOrDefault(f => f.Length > 2 && f[2] == id)?[0];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // DllImport rather than LibraryImport, which would need unsafe code in the whole library for three calls.
    [DllImport("libc")]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true)]
    private static extern int statx(int directory, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, [Out] byte[] buffer);

    [DllImport("libc", SetLastError = true)]
    private static extern int access([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int mode);
}
