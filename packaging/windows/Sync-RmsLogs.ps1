<#
.SYNOPSIS
  Fetches Azure RMS usage logs and exports RMS connector / ECMA2Host events, incrementally,
  into the folders that shipper watches.

.DESCRIPTION
  Runs unattended from a scheduled task (see Install-SyncRmsLogsTask.ps1), under Windows
  PowerShell 5.1 or PowerShell 7.

  Usage logs: with the AIPService module (Get-AipServiceUserLog), or the older AADRM module
  (Get-AadrmUserLog) where only that exists. Only whole past UTC days are fetched (the service
  publishes a day's log once the day is over); the last complete day fetched is kept in a small
  state file, and the last -OverlapDays days before it are fetched again on every run to catch
  late records (shipper skips records it already shipped, by row-id, so the overlap costs
  nothing downstream). A day is downloaded into a hidden staging folder
  (<UsageLogPath>\.sync-rmslogs\<day>\) and each complete file is then renamed into
  <UsageLogPath>: shipper never sees a file being written, because its globs skip names that
  start with a dot.

  Events: each configured event log is queried with `wevtutil qe /f:xml` and an XPath filter
  on TimeCreated from the last exported event (time and record id kept in the state file), and
  the new events go to a new file per run and log (<EventPath>\<name>-<UTC stamp>.xml), first
  written as .<name>-<stamp>.xml.partial and renamed when complete.

  Everything the script does is logged to <StatePath>\Sync-RmsLogs.log.

  The logic lives in functions (no side effects until Invoke-RmsLogSync runs), so that it can
  be dot-sourced and tested:  . .\Sync-RmsLogs.ps1 ; Get-UsageLogDays -LastCompleteDay ...

.PARAMETER UsageLogPath
  Folder shipper's rms_usage input watches (for example D:\RMSLogs).

.PARAMETER EventPath
  Folder shipper's windows_events input watches (for example D:\Exports).

.PARAMETER StatePath
  Where the state file and the log go. Default: %ProgramData%\shipper-sync.

.PARAMETER UsageLogs
  Only fetch usage logs (default: both usage logs and events).

.PARAMETER Events
  Only export events (default: both usage logs and events).

.PARAMETER InitialDays
  On the first run, how many past days of usage logs to fetch. Default 30.

.PARAMETER OverlapDays
  How many of the last complete days to fetch again on each run. Default 2.

.PARAMETER NumberOfThreads
  Download threads, passed to the cmdlet where it has -NumberOfThreads (1-32). Alias -Parallel.

.PARAMETER CredentialPath
  A credential saved with Export-Clixml by the account the task runs as (DPAPI: only that
  account on that machine can read it), for Connect-AipService -Credential.

.PARAMETER ConnectParameters
  Other parameters for Connect-AipService / Connect-AadrmService (for example a certificate
  thumbprint and application id, where your module version supports them).

.PARAMETER SkipConnect
  Do not connect (the session is already connected).

.PARAMETER EventSources
  The event logs to export, as hashtables with Name (file name prefix), Log (channel) and an
  optional Provider. Default: the RMS connector (Application log, provider
  "Microsoft RMS connector") and ECMA2Host (its own log).

.PARAMETER InitialEventDays
  On the first run, how many days of events to export. Default 7.

.PARAMETER MaxEvents
  At most this many events per log and run (the rest come next run). Default 50000.

.EXAMPLE
  .\Sync-RmsLogs.ps1 -UsageLogPath D:\RMSLogs -EventPath D:\Exports -CredentialPath C:\ProgramData\shipper-sync\aip.cred
#>
[CmdletBinding()]
param(
    [string] $UsageLogPath,
    [string] $EventPath,
    [string] $StatePath = (Join-Path $env:ProgramData 'shipper-sync'),
    [switch] $UsageLogs,
    [switch] $Events,
    [ValidateRange(1, 3650)] [int] $InitialDays = 30,
    [ValidateRange(0, 30)] [int] $OverlapDays = 2,
    [Alias('Parallel')] [ValidateRange(1, 32)] [int] $NumberOfThreads = 3,
    [string] $CredentialPath,
    [hashtable] $ConnectParameters = @{},
    [switch] $SkipConnect,
    [hashtable[]] $EventSources = @(
        @{ Name = 'rms-connector'; Log = 'Application'; Provider = 'Microsoft RMS connector' },
        @{ Name = 'ecma2host'; Log = 'ECMA2Host' }
    ),
    [ValidateRange(1, 3650)] [int] $InitialEventDays = 7,
    [ValidateRange(1, 10000000)] [int] $MaxEvents = 50000
)

Set-StrictMode -Version 3.0

$script:DayFormat = 'yyyy-MM-dd'
$script:Invariant = [System.Globalization.CultureInfo]::InvariantCulture
$script:StagingFolderName = '.sync-rmslogs'
$script:LogFile = $null

# --- logging ---------------------------------------------------------------------------------

function Write-SyncLog {
    <# One line to the log file (kept under 5 MB, one old generation) and to the verbose stream. #>
    param([Parameter(Mandatory)] [string] $Message, [ValidateSet('INFO', 'WARN', 'ERROR')] [string] $Level = 'INFO')
    $line = '{0} {1} {2}' -f [datetime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ', $script:Invariant), $Level, $Message
    Write-Verbose $line
    if ($Level -ne 'INFO') { Write-Warning $Message }
    if ($script:LogFile) {
        if ((Test-Path -LiteralPath $script:LogFile) -and (Get-Item -LiteralPath $script:LogFile).Length -gt (5 * 1024 * 1024)) {
            Move-Item -LiteralPath $script:LogFile -Destination "$($script:LogFile).1" -Force
        }
        Add-Content -LiteralPath $script:LogFile -Value $line -Encoding UTF8
    }
}

# --- state -----------------------------------------------------------------------------------

function New-SyncState {
    [ordered]@{ usageLogs = [ordered]@{ lastCompleteDay = $null }; events = [ordered]@{} }
}

function Read-SyncState {
    <# The state file as a hashtable; a new state when there is none. A damaged file is an
       error, not a silent restart from scratch (that would re-fetch InitialDays of logs). #>
    param([Parameter(Mandatory)] [string] $Path)
    $state = New-SyncState
    if (-not (Test-Path -LiteralPath $Path)) { return $state }
    try {
        $json = Get-Content -LiteralPath $Path -Raw -Encoding UTF8 | ConvertFrom-Json -ErrorAction Stop
    } catch {
        throw "state file $Path is not valid JSON ($($_.Exception.Message)); fix or delete it"
    }
    # PowerShell 7's ConvertFrom-Json turns ISO dates into DateTime values (5.1 keeps strings):
    # the day is taken back to text, and an event time from its exact UTC ticks.
    if ($json.PSObject.Properties['usageLogs'] -and $json.usageLogs.PSObject.Properties['lastCompleteDay']) {
        $day = $json.usageLogs.lastCompleteDay
        if ($day -is [datetime]) { $day = $day.ToString($script:DayFormat, $script:Invariant) }
        if ($day) { $state.usageLogs.lastCompleteDay = (ConvertTo-UtcDay $day).ToString($script:DayFormat, $script:Invariant) }
    }
    if ($json.PSObject.Properties['events'] -and $json.events) {
        foreach ($p in $json.events.PSObject.Properties) {
            if ($p.Value.PSObject.Properties['lastTicks'] -and $null -ne $p.Value.lastTicks) {
                $time = Format-SystemTime (New-Object DateTime([long]$p.Value.lastTicks, [DateTimeKind]::Utc))
            } else {
                $time = [string]$p.Value.lastTime
            }
            $state.events[$p.Name] = New-EventPosition -LastTime $time -LastRecordId ([long]$p.Value.lastRecordId)
        }
    }
    return $state
}

function Format-SystemTime {
    param([Parameter(Mandatory)] [datetime] $Time)
    $Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", $script:Invariant)
}

function New-EventPosition {
    <# An event log's entry in the state: the last exported event's time (as text, and as UTC
       ticks, which survive any JSON reader) and record id. #>
    param([string] $LastTime, [long] $LastRecordId)
    $ticks = $null
    if ($LastTime) { $ticks = (ConvertFrom-SystemTime $LastTime).Ticks }
    [ordered]@{ lastTime = $LastTime; lastTicks = $ticks; lastRecordId = $LastRecordId }
}

function Write-SyncState {
    <# Written to a temporary file and renamed over the old one: a crash leaves the old state or
       the new one, never half of one. #>
    param([Parameter(Mandatory)] [string] $Path, [Parameter(Mandatory)] $State)
    $tmp = "$Path.tmp"
    $json = $State | ConvertTo-Json -Depth 5
    [System.IO.File]::WriteAllText($tmp, $json, (New-Object System.Text.UTF8Encoding($false)))
    Move-FileInPlace -Source $tmp -Destination $Path
}

function Move-FileInPlace {
    <# Rename, replacing the destination if it exists (same volume: atomic). #>
    param([Parameter(Mandatory)] [string] $Source, [Parameter(Mandatory)] [string] $Destination)
    if (Test-Path -LiteralPath $Destination) {
        [System.IO.File]::Replace($Source, $Destination, [NullString]::Value)
    } else {
        [System.IO.File]::Move($Source, $Destination)
    }
}

# --- usage logs: which days ------------------------------------------------------------------

function ConvertTo-UtcDay {
    param([Parameter(Mandatory)] [string] $Day)
    try {
        $styles = [System.Globalization.DateTimeStyles]'AssumeUniversal, AdjustToUniversal'
        return [datetime]::ParseExact($Day, $script:DayFormat, $script:Invariant, $styles)
    } catch {
        throw "'$Day' is not a day in the form yyyy-MM-dd"
    }
}

function Get-UsageLogDays {
    <# The UTC days to fetch, oldest first: whole past days only (never today), starting
       OverlapDays before the day after the last complete one (re-fetch for late records), or
       InitialDays back on the first run. Returns yyyy-MM-dd strings. #>
    param(
        [string] $LastCompleteDay,
        [Parameter(Mandatory)] [datetime] $NowUtc,
        [int] $InitialDays = 30,
        [int] $OverlapDays = 2
    )
    $today = $NowUtc.ToUniversalTime().Date
    $lastWhole = $today.AddDays(-1)
    if ($LastCompleteDay) {
        $start = (ConvertTo-UtcDay $LastCompleteDay).Date.AddDays(1 - $OverlapDays)
    } else {
        $start = $today.AddDays(-$InitialDays)
    }
    $days = New-Object System.Collections.Generic.List[string]
    for ($d = $start; $d -le $lastWhole; $d = $d.AddDays(1)) {
        $days.Add($d.ToString($script:DayFormat, $script:Invariant))
    }
    return , $days.ToArray()
}

function Get-StagingFolder {
    <# Inside the watched folder (same volume, so the final move is a rename), hidden from
       shipper by the leading dot. #>
    param([Parameter(Mandatory)] [string] $UsageLogPath, [Parameter(Mandatory)] [string] $Day)
    Join-Path (Join-Path $UsageLogPath $script:StagingFolderName) $Day
}

function Get-FileSha256 {
    param([Parameter(Mandatory)] [string] $Path)
    (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash
}

function Publish-StagedFile {
    <# Moves one complete downloaded file into the watched folder. The same name with the same
       content (a re-fetch that found nothing new) is dropped; new content replaces the old file
       (shipper sees another file and skips the records it already shipped); if the old file
       cannot be replaced (open elsewhere), the new one goes beside it under a -refetch-<stamp>
       name. Returns what was done: unchanged, new, replaced or beside. #>
    param(
        [Parameter(Mandatory)] [string] $StagedFile,
        [Parameter(Mandatory)] [string] $TargetFolder,
        [Parameter(Mandatory)] [datetime] $NowUtc
    )
    $name = Split-Path -Leaf $StagedFile
    $target = Join-Path $TargetFolder $name
    if (-not (Test-Path -LiteralPath $target)) {
        [System.IO.File]::Move($StagedFile, $target)
        return 'new'
    }
    if ((Get-Item -LiteralPath $target).Length -eq (Get-Item -LiteralPath $StagedFile).Length -and
        (Get-FileSha256 $target) -eq (Get-FileSha256 $StagedFile)) {
        Remove-Item -LiteralPath $StagedFile -Force
        return 'unchanged'
    }
    try {
        [System.IO.File]::Replace($StagedFile, $target, [NullString]::Value)
        return 'replaced'
    } catch {
        $beside = Join-Path $TargetFolder (Get-RefetchName -Name $name -NowUtc $NowUtc)
        [System.IO.File]::Move($StagedFile, $beside)
        return 'beside'
    }
}

function Get-RefetchName {
    param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [datetime] $NowUtc)
    $ext = [System.IO.Path]::GetExtension($Name)
    $base = [System.IO.Path]::GetFileNameWithoutExtension($Name)
    '{0}-refetch-{1}{2}' -f $base, $NowUtc.ToUniversalTime().ToString('yyyyMMddTHHmmssZ', $script:Invariant), $ext
}

# --- usage logs: the cmdlets -----------------------------------------------------------------

function Resolve-UsageLogCommand {
    <# Get-AipServiceUserLog (AIPService) or, where only the older module exists,
       Get-AadrmUserLog (AADRM). On PowerShell 7 the AIPService module is loaded through Windows
       PowerShell compatibility when it does not load natively. Returns @{ Get; Connect }. #>
    $pairs = @(
        @{ Module = 'AIPService'; Get = 'Get-AipServiceUserLog'; Connect = 'Connect-AipService' },
        @{ Module = 'AADRM'; Get = 'Get-AadrmUserLog'; Connect = 'Connect-AadrmService' }
    )
    foreach ($p in $pairs) {
        if (-not (Get-Command $p.Get -ErrorAction SilentlyContinue)) {
            if (-not (Get-Module -ListAvailable -Name $p.Module)) { continue }
            try {
                Import-Module $p.Module -ErrorAction Stop
            } catch {
                if ($PSVersionTable.PSEdition -eq 'Core') {
                    Import-Module $p.Module -UseWindowsPowerShell -ErrorAction Stop
                } else { throw }
            }
        }
        $get = Get-Command $p.Get -ErrorAction SilentlyContinue
        if ($get) { return @{ Get = $get; Connect = (Get-Command $p.Connect -ErrorAction SilentlyContinue) } }
    }
    throw 'neither the AIPService module (Install-Module AIPService) nor the AADRM module is installed'
}

function Get-UsageLogArguments {
    <# Parameters for one day's download; -NumberOfThreads only where the cmdlet has it. #>
    param(
        [Parameter(Mandatory)] $Command,
        [Parameter(Mandatory)] [string] $Path,
        [Parameter(Mandatory)] [string] $Day,
        [int] $NumberOfThreads = 3
    )
    # The date alone (Kind Unspecified): a UTC midnight converted to local time west of
    # Greenwich would name the day before.
    $date = [datetime]::SpecifyKind((ConvertTo-UtcDay $Day), [DateTimeKind]::Unspecified)
    $splat = @{ Path = $Path; ForDate = $date; Force = $true }
    if ($Command.Parameters.ContainsKey('NumberOfThreads')) { $splat.NumberOfThreads = $NumberOfThreads }
    return $splat
}

function Sync-UsageLogs {
    param(
        [Parameter(Mandatory)] [string] $UsageLogPath,
        [Parameter(Mandatory)] $State,
        [Parameter(Mandatory)] [string] $StateFile,
        [Parameter(Mandatory)] [datetime] $NowUtc,
        [int] $InitialDays, [int] $OverlapDays, [int] $NumberOfThreads,
        [string] $CredentialPath, [hashtable] $ConnectParameters, [switch] $SkipConnect
    )
    $days = Get-UsageLogDays -LastCompleteDay $State.usageLogs.lastCompleteDay -NowUtc $NowUtc `
        -InitialDays $InitialDays -OverlapDays $OverlapDays
    if ($days.Count -eq 0) { Write-SyncLog 'usage logs: no whole day to fetch yet'; return }
    $cmd = Resolve-UsageLogCommand
    Write-SyncLog ("usage logs: {0} from module {1}; days {2} to {3}" -f $cmd.Get.Name, $cmd.Get.ModuleName, $days[0], $days[-1])
    if (-not $SkipConnect) {
        if (-not $cmd.Connect) { throw "no connect cmdlet beside $($cmd.Get.Name)" }
        $connect = @{} + $ConnectParameters
        if ($CredentialPath) { $connect.Credential = Import-Clixml -LiteralPath $CredentialPath }
        & $cmd.Connect @connect | Out-Null
    }
    if (-not $cmd.Get.Parameters.ContainsKey('NumberOfThreads')) {
        Write-SyncLog "usage logs: $($cmd.Get.Name) has no -NumberOfThreads; downloading with its default"
    }
    foreach ($day in $days) {
        $staging = Get-StagingFolder -UsageLogPath $UsageLogPath -Day $day
        if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force }
        New-Item -ItemType Directory -Force -Path $staging | Out-Null
        $arguments = Get-UsageLogArguments -Command $cmd.Get -Path $staging -Day $day -NumberOfThreads $NumberOfThreads
        try {
            & $cmd.Get @arguments -ErrorAction Stop | Out-Null
        } catch {
            # Stop here: a later day must not be recorded as complete over a missing one.
            Write-SyncLog "usage logs: $day failed: $($_.Exception.Message); will retry next run" 'ERROR'
            throw
        }
        $counts = @{ new = 0; replaced = 0; unchanged = 0; beside = 0 }
        foreach ($f in Get-ChildItem -LiteralPath $staging -File -Recurse) {
            $counts[(Publish-StagedFile -StagedFile $f.FullName -TargetFolder $UsageLogPath -NowUtc $NowUtc)]++
        }
        Remove-Item -LiteralPath $staging -Recurse -Force
        Write-SyncLog ("usage logs: {0}: {1} new, {2} replaced, {3} unchanged, {4} beside a locked file" -f $day, $counts.new, $counts.replaced, $counts.unchanged, $counts.beside)
        $last = $State.usageLogs.lastCompleteDay
        if (-not $last -or (ConvertTo-UtcDay $day) -gt (ConvertTo-UtcDay $last)) {
            $State.usageLogs.lastCompleteDay = $day
            Write-SyncState -Path $StateFile -State $State
        }
    }
}

# --- events ----------------------------------------------------------------------------------

function Format-XPathTime {
    <# wevtutil's XPath compares SystemTime to the millisecond: round down, so that the last
       exported event is included again and dropped by Select-NewEvent, never skipped. #>
    param([Parameter(Mandatory)] [datetime] $Time)
    $t = $Time.ToUniversalTime()
    $t = $t.AddTicks(-($t.Ticks % [TimeSpan]::TicksPerMillisecond))
    $t.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", $script:Invariant)
}

function ConvertFrom-SystemTime {
    param([Parameter(Mandatory)] [string] $SystemTime)
    [datetime]::Parse($SystemTime, $script:Invariant, [System.Globalization.DateTimeStyles]::RoundtripKind).ToUniversalTime()
}

function Get-EventQuery {
    <# The XPath filter: events of the provider (if any) from the last exported time on, or
       from InitialEventDays ago on the first run. #>
    param(
        [string] $Provider,
        [string] $LastTime,
        [Parameter(Mandatory)] [datetime] $NowUtc,
        [int] $InitialEventDays = 7
    )
    if ($LastTime) { $since = ConvertFrom-SystemTime $LastTime } else { $since = $NowUtc.ToUniversalTime().AddDays(-$InitialEventDays) }
    $conditions = @("TimeCreated[@SystemTime>='$(Format-XPathTime $since)']")
    if ($Provider) {
        if ($Provider.Contains("'")) { throw "provider name $Provider must not contain a quote" }
        $conditions = @("Provider[@Name='$Provider']") + $conditions
    }
    '*[System[{0}]]' -f ($conditions -join ' and ')
}

function Split-EventXml {
    <# wevtutil qe /f:xml prints <Event> elements one after another, with no root: parse them
       under one. Returns the Event elements. #>
    param([Parameter(Mandatory)] [AllowEmptyString()] [string] $Text)
    if (-not $Text.Trim()) { return , @() }
    # Event data may hold characters XML 1.0 forbids (as character references): read them
    # rather than fail the export on every run.
    $settings = New-Object System.Xml.XmlReaderSettings
    $settings.CheckCharacters = $false
    $reader = [System.Xml.XmlReader]::Create((New-Object System.IO.StringReader("<Events>$Text</Events>")), $settings)
    $doc = New-Object System.Xml.XmlDocument
    $doc.PreserveWhitespace = $true
    try { $doc.Load($reader) } finally { $reader.Close() }
    return , @($doc.DocumentElement.ChildNodes | Where-Object { $_.NodeType -eq 'Element' -and $_.LocalName -eq 'Event' })
}

function Get-EventPosition {
    <# (time, record id) of one Event element. #>
    param([Parameter(Mandatory)] [System.Xml.XmlElement] $Element)
    $ns = @{ e = 'http://schemas.microsoft.com/win/2004/08/events/event' }
    $time = (Select-Xml -Xml $Element -XPath 'e:System/e:TimeCreated/@SystemTime' -Namespace $ns).Node.Value
    $id = (Select-Xml -Xml $Element -XPath 'e:System/e:EventRecordID' -Namespace $ns).Node.InnerText
    [pscustomobject]@{ Time = (ConvertFrom-SystemTime $time); SystemTime = $time; RecordId = [long]$id }
}

function Select-NewEvent {
    <# Drops what was exported already: events before the last exported one, or at the same
       time with a record id not above it. Returns @{ Events; LastTime; LastRecordId }. #>
    param(
        [Parameter(Mandatory)] [AllowEmptyCollection()] [object[]] $Events,
        [string] $LastTime,
        [long] $LastRecordId = 0
    )
    $kept = New-Object System.Collections.Generic.List[object]
    $lastT = $null
    if ($LastTime) { $lastT = ConvertFrom-SystemTime $LastTime }
    $newTime = $LastTime; $newId = $LastRecordId; $newT = $lastT
    foreach ($ev in $Events) {
        $pos = Get-EventPosition $ev
        if ($null -ne $lastT) {
            if ($pos.Time -lt $lastT) { continue }
            if ($pos.Time -eq $lastT -and $pos.RecordId -le $LastRecordId) { continue }
        }
        $kept.Add($ev)
        if ($null -eq $newT -or $pos.Time -gt $newT -or ($pos.Time -eq $newT -and $pos.RecordId -gt $newId)) {
            $newT = $pos.Time; $newTime = $pos.SystemTime; $newId = $pos.RecordId
        }
    }
    @{ Events = $kept.ToArray(); LastTime = $newTime; LastRecordId = $newId }
}

function Get-ExportFileName {
    <# The final name and the temporary one (hidden from shipper by the leading dot). #>
    param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [datetime] $NowUtc)
    $final = '{0}-{1}.xml' -f $Name, $NowUtc.ToUniversalTime().ToString('yyyyMMddTHHmmssfffZ', $script:Invariant)
    @{ Final = $final; Temporary = ".$final.partial" }
}

function Invoke-Wevtutil {
    <# wevtutil qe with Unicode output (/uni:true) read as UTF-16, so that no character is lost
       to the console code page. #>
    param([Parameter(Mandatory)] [string] $Log, [Parameter(Mandatory)] [string] $Query, [int] $MaxEvents)
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = Join-Path $env:SystemRoot 'System32\wevtutil.exe'
    $psi.Arguments = 'qe "{0}" /q:"{1}" /f:xml /rd:false /c:{2} /uni:true' -f $Log, $Query, $MaxEvents
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.StandardOutputEncoding = [System.Text.Encoding]::Unicode
    $p = [System.Diagnostics.Process]::Start($psi)
    $err = $p.StandardError.ReadToEndAsync()
    $out = $p.StandardOutput.ReadToEnd()
    $p.WaitForExit()
    if ($p.ExitCode -ne 0) { throw "wevtutil qe $Log failed ($($p.ExitCode)): $($err.Result.Trim())" }
    $out
}

function Export-EventSource {
    param(
        [Parameter(Mandatory)] [hashtable] $Source,
        [Parameter(Mandatory)] [string] $EventPath,
        [Parameter(Mandatory)] $State,
        [Parameter(Mandatory)] [string] $StateFile,
        [Parameter(Mandatory)] [datetime] $NowUtc,
        [int] $InitialEventDays, [int] $MaxEvents
    )
    $name = $Source.Name
    $prev = $State.events[$name]
    $lastTime = $null; $lastId = 0
    if ($prev) { $lastTime = $prev.lastTime; $lastId = $prev.lastRecordId }
    $provider = $null
    if ($Source.ContainsKey('Provider')) { $provider = $Source.Provider }
    $query = Get-EventQuery -Provider $provider -LastTime $lastTime -NowUtc $NowUtc -InitialEventDays $InitialEventDays
    $text = Invoke-Wevtutil -Log $Source.Log -Query $query -MaxEvents $MaxEvents
    $selected = Select-NewEvent -Events (Split-EventXml $text) -LastTime $lastTime -LastRecordId $lastId
    if ($selected.Events.Count -eq 0) { Write-SyncLog "events: $name ($($Source.Log)): nothing new"; return }
    $names = Get-ExportFileName -Name $name -NowUtc $NowUtc
    $tmp = Join-Path $EventPath $names.Temporary
    $final = Join-Path $EventPath $names.Final
    $body = ($selected.Events | ForEach-Object { $_.OuterXml }) -join "`r`n"
    [System.IO.File]::WriteAllText($tmp, $body + "`r`n", (New-Object System.Text.UTF8Encoding($false)))
    [System.IO.File]::Move($tmp, $final)
    $State.events[$name] = New-EventPosition -LastTime $selected.LastTime -LastRecordId $selected.LastRecordId
    Write-SyncState -Path $StateFile -State $State
    Write-SyncLog ("events: {0} ({1}): {2} events to {3}, up to {4} record {5}" -f $name, $Source.Log, $selected.Events.Count, $names.Final, $selected.LastTime, $selected.LastRecordId)
}

# --- the run ---------------------------------------------------------------------------------

function Invoke-RmsLogSync {
    <# One run; returns $true when every part succeeded (each failure is logged). #>
    [CmdletBinding()]
    param(
        [string] $UsageLogPath, [string] $EventPath, [string] $StatePath,
        [switch] $UsageLogs, [switch] $Events,
        [int] $InitialDays = 30, [int] $OverlapDays = 2, [int] $NumberOfThreads = 3,
        [string] $CredentialPath, [hashtable] $ConnectParameters = @{}, [switch] $SkipConnect,
        [hashtable[]] $EventSources, [int] $InitialEventDays = 7, [int] $MaxEvents = 50000
    )
    $doUsage = $UsageLogs -or -not $Events
    $doEvents = $Events -or -not $UsageLogs
    if ($doUsage -and -not $UsageLogPath) { throw '-UsageLogPath is required to fetch usage logs (or pass -Events)' }
    if ($doEvents -and -not $EventPath) { throw '-EventPath is required to export events (or pass -UsageLogs)' }
    New-Item -ItemType Directory -Force -Path $StatePath | Out-Null
    $script:LogFile = Join-Path $StatePath 'Sync-RmsLogs.log'
    $stateFile = Join-Path $StatePath 'Sync-RmsLogs.state.json'
    $state = Read-SyncState -Path $stateFile
    $now = [datetime]::UtcNow
    $failed = $false
    if ($doUsage) {
        New-Item -ItemType Directory -Force -Path $UsageLogPath | Out-Null
        try {
            Sync-UsageLogs -UsageLogPath $UsageLogPath -State $state -StateFile $stateFile -NowUtc $now `
                -InitialDays $InitialDays -OverlapDays $OverlapDays -NumberOfThreads $NumberOfThreads `
                -CredentialPath $CredentialPath -ConnectParameters $ConnectParameters -SkipConnect:$SkipConnect
        } catch {
            Write-SyncLog "usage logs: $($_.Exception.Message)" 'ERROR'; $failed = $true
        }
    }
    if ($doEvents) {
        New-Item -ItemType Directory -Force -Path $EventPath | Out-Null
        foreach ($source in $EventSources) {
            try {
                Export-EventSource -Source $source -EventPath $EventPath -State $state -StateFile $stateFile `
                    -NowUtc $now -InitialEventDays $InitialEventDays -MaxEvents $MaxEvents
            } catch {
                Write-SyncLog "events: $($source.Name): $($_.Exception.Message)" 'ERROR'; $failed = $true
            }
        }
    }
    return (-not $failed)
}

# Dot-sourced (for tests), define the functions only; run otherwise.
if ($MyInvocation.InvocationName -ne '.') {
    $ok = Invoke-RmsLogSync -UsageLogPath $UsageLogPath -EventPath $EventPath -StatePath $StatePath `
        -UsageLogs:$UsageLogs -Events:$Events -InitialDays $InitialDays -OverlapDays $OverlapDays `
        -NumberOfThreads $NumberOfThreads -CredentialPath $CredentialPath -ConnectParameters $ConnectParameters `
        -SkipConnect:$SkipConnect -EventSources $EventSources -InitialEventDays $InitialEventDays -MaxEvents $MaxEvents
    if (@($ok)[-1] -ne $true) { exit 1 }
}
