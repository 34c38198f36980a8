// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BLS12381} from "./BLS12381.sol";
import {Governed} from "./Governed.sol";

/// @title OperatorRegistry
/// @notice The keeper operators and their voting power. Governance admits an operator
///         with its BLS public key, which must come with a valid proof of possession
///         (checked here, on chain: this is what stops rogue-key attacks on aggregate
///         signatures), its libp2p peer id and its stake. Ids are small (0..255) so that
///         a set of signers fits in one 256-bit bitmap; ids are never reused.
///
///         A performer whose task the AttestationCenter rejects loses `penaltyBps` of its stake
///         (and its place, when nothing is left). Only the AttestationCenter may penalise; which
///         contract that is changes only after Governed's delay.
/// @dev The registry keeps the sum of the active operators' public keys and stakes, so
///      that verifying a vote signed by most operators needs only the few who did not sign.
contract OperatorRegistry is Governed {
    uint256 public constant MAX_OPERATORS = 256;
    /// @notice The largest share of its stake a rejected performer can lose (basis points).
    uint16 public constant MAX_PENALTY_BPS = 5_000;
    bytes32 private constant _CENTER = "attestationCenter";
    bytes public constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    struct Operator {
        address account;
        uint96 stake;
        bool active;
        bytes peerId;
    }

    /// @notice See quorumContext.
    struct QuorumContext {
        uint256 activeBitmap;
        uint256 totalStake;
        bytes32[3] aggregateKey;
        address performerAccount;
        uint96 performerStake;
    }

    uint256 public operatorCount;
    /// @notice Bit i is set when operator i is active.
    uint256 public activeBitmap;
    uint256 public totalActiveStake;
    mapping(uint256 => Operator) private _operators;
    /// @dev Public keys in EIP-2537 encoding without the zero padding: x (48 bytes) || y (48 bytes).
    mapping(uint256 => bytes32[3]) private _publicKeys;
    bytes32[3] private _aggregateKey;
    mapping(address => uint256) private _activeIdPlusOne;
    mapping(bytes32 => bool) public keyRegistered;
    /// @notice The contract that decides tasks and may penalise their performers.
    address public attestationCenter;
    /// @notice The share of its stake a rejected performer loses, in basis points.
    uint16 public penaltyBps = 1_000;

    event OperatorRegistered(uint8 indexed id, address indexed account, bytes publicKey, bytes peerId, uint96 stake);
    event StakeUpdated(uint8 indexed id, uint96 previous, uint96 current);
    event OperatorDeactivated(uint8 indexed id);
    event OperatorPenalized(uint8 indexed id, uint96 penalty, uint96 stake);
    event PenaltyChanged(uint16 previousBps, uint16 bps);

    error RegistryFull();
    error AccountAlreadyActive(address account, uint8 id);
    error KeyAlreadyRegistered();
    error InvalidPublicKey();
    error InvalidProofOfPossession();
    error ZeroStake();
    error NotActive(uint8 id);
    error NotOperatorOrGovernor(address caller);
    error NotAttestationCenter(address caller);
    error PenaltyTooHigh(uint16 bps);

    constructor(address initialGovernor) Governed(initialGovernor) {}

    /// @notice Admit `account` with BLS `publicKey` (EIP-2537 G1, 128 bytes) proven by
    ///         `proofOfPossession` (EIP-2537 G2, 256 bytes: the PoP-DST signature of the
    ///         48-byte compressed key).
    function registerOperator(
        address account,
        bytes calldata publicKey,
        bytes calldata proofOfPossession,
        bytes calldata peerId,
        uint96 stake
    ) external onlyGovernor returns (uint8 id) {
        if (operatorCount >= MAX_OPERATORS) revert RegistryFull();
        uint256 current = _activeIdPlusOne[account];
        if (current != 0) revert AccountAlreadyActive(account, uint8(current - 1));
        if (stake == 0) revert ZeroStake();
        if (publicKey.length != BLS12381.G1_LENGTH || BLS12381.isInfinity(publicKey)) revert InvalidPublicKey();
        bytes32 keyHash = keccak256(publicKey);
        if (keyRegistered[keyHash]) revert KeyAlreadyRegistered();
        bytes memory compressed = BLS12381.g1Compress(publicKey);
        // The pairing precompile also rejects keys off the curve or outside the subgroup.
        if (!BLS12381.verify(publicKey, compressed, POP_DST, proofOfPossession)) {
            revert InvalidProofOfPossession();
        }

        id = uint8(operatorCount++);
        keyRegistered[keyHash] = true;
        _operators[id] = Operator({account: account, stake: stake, active: true, peerId: peerId});
        _publicKeys[id] = BLS12381.packG1(publicKey);
        _activeIdPlusOne[account] = uint256(id) + 1;
        activeBitmap |= 1 << id;
        totalActiveStake += stake;
        _aggregateKey = BLS12381.packG1(BLS12381.g1Add(BLS12381.unpackG1(_aggregateKey), publicKey));
        emit OperatorRegistered(id, account, compressed, peerId, stake);
    }

    function updateStake(uint8 id, uint96 stake) external onlyGovernor {
        if (stake == 0) revert ZeroStake();
        Operator storage op = _activeOperator(id);
        emit StakeUpdated(id, op.stake, stake);
        totalActiveStake = totalActiveStake - op.stake + stake;
        op.stake = stake;
    }

    /// @notice Set the AttestationCenter (at once while unset; otherwise after GOVERNANCE_DELAY,
    ///         see applyAttestationCenter).
    function proposeAttestationCenter(address center) external onlyGovernor {
        attestationCenter = _proposeAddress(_CENTER, attestationCenter, center);
    }

    function applyAttestationCenter() external onlyGovernor {
        attestationCenter = _applyAddress(_CENTER, attestationCenter);
    }

    function setPenaltyBps(uint16 bps) external onlyGovernor {
        if (bps > MAX_PENALTY_BPS) revert PenaltyTooHigh(bps);
        emit PenaltyChanged(penaltyBps, bps);
        penaltyBps = bps;
    }

    /// @notice Take `penaltyBps` of operator `id`'s stake, for a task of its that was rejected;
    ///         an operator left with no stake is deactivated. Nothing happens to an inactive one.
    function penalize(uint8 id) external {
        if (msg.sender != attestationCenter) revert NotAttestationCenter(msg.sender);
        Operator storage op = _operators[id];
        if (!op.active) return;
        uint96 penalty = uint96((uint256(op.stake) * penaltyBps) / 10_000);
        if (penalty == 0) return;
        if (penalty >= op.stake) {
            emit OperatorPenalized(id, op.stake, 0);
            _deactivate(id, op);
            return;
        }
        op.stake -= penalty;
        totalActiveStake -= penalty;
        emit OperatorPenalized(id, penalty, op.stake);
    }

    /// @notice Take operator `id` out of every future quorum; the governor or the operator may.
    function deactivate(uint8 id) external {
        Operator storage op = _activeOperator(id);
        if (msg.sender != governor && msg.sender != op.account) revert NotOperatorOrGovernor(msg.sender);
        _deactivate(id, op);
    }

    function _deactivate(uint8 id, Operator storage op) private {
        op.active = false;
        delete _activeIdPlusOne[op.account];
        activeBitmap &= ~(uint256(1) << id);
        totalActiveStake -= op.stake;
        bytes memory negated = BLS12381.g1Negate(BLS12381.unpackG1(_publicKeys[id]));
        _aggregateKey = BLS12381.packG1(BLS12381.g1Add(BLS12381.unpackG1(_aggregateKey), negated));
        emit OperatorDeactivated(id);
    }

    function getOperator(uint8 id) external view returns (Operator memory) {
        return _operators[id];
    }

    /// @notice The operator id of an active `account`, and whether there is one.
    function activeIdOf(address account) external view returns (bool found, uint8 id) {
        uint256 idPlusOne = _activeIdPlusOne[account];
        return (idPlusOne != 0, idPlusOne == 0 ? 0 : uint8(idPlusOne - 1));
    }

    /// @notice Operator `id`'s public key (EIP-2537, 128 bytes) and stake.
    function keyAndStake(uint8 id) external view returns (bytes memory publicKey, uint96 stake) {
        return (BLS12381.unpackG1(_publicKeys[id]), _operators[id].stake);
    }

    /// @notice Operator `id`'s public key, packed (see BLS12381.packG1), and stake.
    function packedKeyAndStake(uint8 id) external view returns (bytes32[3] memory publicKey, uint96 stake) {
        return (_publicKeys[id], _operators[id].stake);
    }

    /// @notice The active set in one read: bitmap, total stake and the sum of their public keys.
    function activeSet() external view returns (uint256 bitmap, uint256 totalStake, bytes memory aggregateKey) {
        return (activeBitmap, totalActiveStake, BLS12381.unpackG1(_aggregateKey));
    }

    /// @notice What verifying a submission needs, in one call: the active set (bitmap, total
    ///         stake, packed sum of keys) and the performer's account and stake.
    function quorumContext(uint8 performerId) external view returns (QuorumContext memory context) {
        Operator storage performer = _operators[performerId];
        return QuorumContext({
            activeBitmap: activeBitmap,
            totalStake: totalActiveStake,
            aggregateKey: _aggregateKey,
            performerAccount: performer.account,
            performerStake: performer.stake
        });
    }

    function _activeOperator(uint8 id) private view returns (Operator storage op) {
        op = _operators[id];
        if (!op.active) revert NotActive(id);
    }
}
